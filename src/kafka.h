/*
 * kafka.h
 *		Thin wrapper over librdkafka for the worker and the SQL functions.
 */
#ifndef EO_KAFKA_H
#define EO_KAFKA_H

#include <librdkafka/rdkafka.h>

#include "datatype/timestamp.h"
#include "utils/jsonb.h"

#define EO_KAFKA_TIMEOUT_MS 10000
#define EO_KAFKA_SLICE_MS 250
/* a slice while the brokers answer fetches: fetch.wait.max.ms (kafka.c) + 500 */
#define EO_KAFKA_HELD_SLICE_MS 2500

extern rd_kafka_resp_err_t eo_kafka_metadata_error;

/* Has a broker answered with these brokers and options (key)? */
typedef struct EoKafkaHealth
{
	bool		reached;
	char	   *key;
	TimestampTz unreachable_since;
} EoKafkaHealth;

extern void eo_kafka_health_track(EoKafkaHealth *h, const char *brokers, Jsonb *options,
								  bool has_offsets, MemoryContext cxt);
extern void eo_kafka_health_reached(EoKafkaHealth *h);
extern void eo_kafka_health_reset(EoKafkaHealth *h);
extern bool eo_kafka_health_trouble(EoKafkaHealth *h, const char *brokers, const char *what,
									char *msg, size_t msglen);
extern void eo_kafka_destroy(rd_kafka_t *rk);

extern bool eo_kafka_secret_key(const char *key);
extern bool eo_kafka_config_error(rd_kafka_resp_err_t err);
extern rd_kafka_resp_err_t eo_kafka_take_error(char *err, size_t errlen);
extern bool eo_kafka_error_noted(void);
extern void eo_kafka_serve_errors(rd_kafka_t *rk);
extern char *eo_kafka_scrub(Jsonb *options, const char *msg);
extern rd_kafka_conf_t *eo_kafka_conf(const char *brokers, Jsonb *options,
									  bool may_load_code, const char *group_id,
									  char *err, size_t errlen);
extern rd_kafka_t *eo_kafka_consumer(rd_kafka_conf_t *conf, char *err, size_t errlen);

/* kafka_ready.c */
extern rd_kafka_queue_t *eo_kafka_ready_enable(rd_kafka_t *rk, char *err, size_t errlen);
extern void eo_kafka_ready_disable(rd_kafka_queue_t *q);
extern bool eo_kafka_ready_wait(long timeout_ms);
extern int	eo_kafka_partitions(rd_kafka_t *rk, const char *topic, int32 **partitions,
								char *err, size_t errlen, int timeout_ms);
extern bool eo_kafka_resolve(rd_kafka_t *rk, const char *topic, int n, const int32 *partitions,
							 const char *position, int64 *offsets, char *err, size_t errlen);

/* avro_cache.c: schema.registry.* settings ride in kafka_options */
extern bool eo_avro_registry_option(const char *key, bool *known);

#endif							/* EO_KAFKA_H */
