/*
 * avro_format.h
 *		Avro values in Kafka records: writer schemas compiled from their JSON
 *		(avro_schema.c), Avro binary decoded into column values
 *		(avro_decode.c, with avro_render.c and avro_datum.c; the reads of
 *		binary are in avro_reader.h), a Confluent Schema Registry client
 *		(avro_registry.c) and the cache of schemas by id with its catalog
 *		table (avro_cache.c).
 */
#ifndef EO_AVRO_H
#define EO_AVRO_H

#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/jsonb.h"

#include "record.h"

typedef enum EoAvroType
{
	EO_AVRO_NULL,
	EO_AVRO_BOOLEAN,
	EO_AVRO_INT,
	EO_AVRO_LONG,
	EO_AVRO_FLOAT,
	EO_AVRO_DOUBLE,
	EO_AVRO_BYTES,
	EO_AVRO_STRING,
	EO_AVRO_RECORD,
	EO_AVRO_ENUM,
	EO_AVRO_ARRAY,
	EO_AVRO_MAP,
	EO_AVRO_UNION,
	EO_AVRO_FIXED
} EoAvroType;

/* Logical types; one on an underlying type the spec does not allow is ignored. */
typedef enum EoAvroLogical
{
	EO_AVRO_PLAIN,
	EO_AVRO_DECIMAL,
	EO_AVRO_UUID,
	EO_AVRO_DATE,
	EO_AVRO_TIME_MILLIS,
	EO_AVRO_TIME_MICROS,
	EO_AVRO_TIMESTAMP_MILLIS,
	EO_AVRO_TIMESTAMP_MICROS,
	EO_AVRO_LOCAL_TIMESTAMP_MILLIS,
	EO_AVRO_LOCAL_TIMESTAMP_MICROS
} EoAvroLogical;

typedef struct EoAvroNode
{
	EoAvroType	type;
	EoAvroLogical logical;
	int			scale;			/* decimal */
	int64		size;			/* fixed */
	char	   *name;			/* full name of a named type */
	int			nchildren;		/* record fields, union branches; 1 for
								 * array items and map values */
	struct EoAvroNode **children;
	char	  **names;			/* record field names or enum symbols */
	int			nsymbols;
} EoAvroNode;

/* avro_schema.c */
extern EoAvroNode *eo_avro_compile(const char *json, MemoryContext cxt);

/*
 * avro_decode.c: the mapped columns of one value into fields (record.h),
 * each as its type's input text or, where the Avro and column types match,
 * as a Datum of the column type
 */
extern void *eo_avro_prepare(EoMapping *map);
extern bool eo_avro_reads_value(EoMapping *map);
extern bool eo_avro_decode(EoFields *f, EoAvroNode *schema, const char *data, size_t len,
						   int *sqlerrcode, char **error);

/* avro_datum.c: one primitive value, read by avro_decode.c */
typedef struct EoAvroScalar
{
	int64		i;				/* boolean, int, long */
	double		f;				/* float, double */
	const char *data;			/* string, bytes, fixed */
	int64		len;
} EoAvroScalar;

extern bool eo_avro_direct(const EoAvroNode *s, Oid typid);
extern bool eo_avro_datum(EoColumn *col, const EoAvroNode *s, const EoAvroScalar *v,
						  Datum *d, const char **error);
extern const char *eo_avro_temporal(const EoAvroNode *s, int64 v, Datum *d);
#define EO_AVRO_NUMERIC_MAX EO_NUMERIC_SHORT_MAX(5)
extern bool eo_avro_decimal(const char *data, int64 len, int scale, void *buf, Datum *d);

/* avro_registry.c */
typedef enum EoRegistryResult
{
	EO_REGISTRY_FOUND,
	EO_REGISTRY_UNKNOWN_ID,		/* the registry says it has no such id */
	EO_REGISTRY_UNREACHABLE,	/* try again later */
	EO_REGISTRY_BROKEN			/* not a registry, or it refuses us */
} EoRegistryResult;

typedef struct EoRegistryConf
{
	char	  **urls;
	int			nurls;
	char	   *user;
	char	   *password;
	char	   *ca_location;
	char	   *cert_location;
	char	   *key_location;
	char	   *key_password;
	bool		verify_host;
	long		timeout_ms;
	/* asked about once a second during a request: give it up? */
	bool		(*abandon) (void *arg);
	void	   *abandon_arg;
} EoRegistryConf;

extern EoRegistryResult eo_registry_fetch(const EoRegistryConf *conf, int32 id,
										  char **schema, char *err, size_t errlen);

/* avro_sql.c: _check_avro_schema(schema text) */
extern Datum eo_ingest_check_avro_schema(PG_FUNCTION_ARGS);

/* avro_cache.c */
typedef enum EoAvroReady
{
	EO_AVRO_READY,
	EO_AVRO_RETRY,
	EO_AVRO_FAILED
} EoAvroReady;

extern void eo_avro_configure(const char *registry, const char *inline_schema,
							  bool key_avro, const char *key_schema, Jsonb *kafka_options);
extern int	eo_avro_missing_ids(EoRecord *recs, int n, int32 **ids);
extern void eo_avro_load_catalog(const int32 *ids, int n);
extern EoAvroReady eo_avro_fetch(const int32 *ids, int n, bool (*abandon) (void *arg),
								 void *abandon_arg, char *err, size_t errlen);
extern void eo_avro_store_catalog(void);
extern bool eo_avro_value(EoFields *f, const char *data, size_t len, int *sqlerrcode,
						  char **error);

#endif							/* EO_AVRO_H */
