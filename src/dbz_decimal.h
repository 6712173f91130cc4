/*
 * dbz_decimal.h
 *		Debezium's precise decimals (base64 with the scale in the Connect
 *		schema) in JSON change events; and the text of a two's complement
 *		decimal, which Avro's decimals are printed with too (avro_render.c).
 */
#ifndef EO_DBZ_DECIMAL_H
#define EO_DBZ_DECIMAL_H

#include "lib/stringinfo.h"

typedef struct EoDbzDecimals EoDbzDecimals;

extern const EoDbzDecimals *eo_dbz_decimals(const char *schema, int len,
											 const char **error);
extern char *eo_dbz_rewrite(const EoDbzDecimals *d, const char *json, int len,
							int *newlen, char **error);
/*
 * The longest unscaled value printed (numeric holds at most 147,455 digits,
 * about 61,000 bytes); printing is quadratic in the length, so a longer one
 * is refused rather than left to stall its batch.
 */
#define EO_DECIMAL_MAX_BYTES 65536

extern void eo_decimal_text(const unsigned char *d, int len, int scale, StringInfo out);

#endif							/* EO_DBZ_DECIMAL_H */
