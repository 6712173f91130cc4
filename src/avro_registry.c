/*
 * avro_registry.c
 *		A Confluent Schema Registry client: GET /schemas/ids/{id} with libcurl.
 *
 * Called by the worker between batches, outside any transaction.  Nothing
 * here raises an error while a curl handle is alive: interrupts abort the
 * transfer from the progress callback and are served after the cleanup.
 * Answers are sorted into what the worker must do: a schema; an id the
 * registry does not know (its records are dead letters); a registry that
 * cannot be reached now (retry, nothing dead-lettered); or something that is
 * no registry or refuses our credentials (the pipeline fails: retrying would
 * not help, and dead-lettering would turn a whole topic into dead letters).
 * Error texts never hold the password: curl's messages do not, and the URLs
 * carry no credentials (create_pipeline refuses them).
 */
#include "postgres.h"

#include <curl/curl.h>

#include "common/jsonapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"

#include "avro_format.h"
#include "compat.h"
#include "json_scan.h"

#define EO_REGISTRY_MAX_BODY (4 * 1024 * 1024)
/* an answer is flat (the schema is a string in it); PostgreSQL's parser recurses */
#define EO_REGISTRY_MAX_NESTING 32

typedef struct EoBody
{
	char	   *data;
	size_t		len;
	bool		too_big;
} EoBody;

static bool eo_curl_ready = false;

static size_t
eo_curl_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	EoBody	   *b = (EoBody *) userdata;
	size_t		n = size * nmemb;
	char	   *grown;

	if (b->len + n > EO_REGISTRY_MAX_BODY)
	{
		b->too_big = true;
		return 0;
	}
	grown = realloc(b->data, b->len + n + 1);
	if (grown == NULL)
		return 0;
	b->data = grown;
	memcpy(b->data + b->len, ptr, n);
	b->len += n;
	b->data[b->len] = '\0';
	return n;
}

/*
 * Abort the transfer when the worker is asked to stop or cancel, or its
 * pipeline changed (paused, altered): a registry that never answers must
 * not hold the worker for the whole timeout.
 */
static int
eo_curl_progress(void *p, curl_off_t dltotal, curl_off_t dlnow,
				 curl_off_t ultotal, curl_off_t ulnow)
{
	const EoRegistryConf *conf = (const EoRegistryConf *) p;

	return (InterruptPending || ProcDiePending ||
			(conf->abandon != NULL && conf->abandon(conf->abandon_arg))) ? 1 : 0;
}

/* The two top-level members of a registry answer that matter. */
typedef struct EoAnswer
{
	JsonLexContext *lex;
	char	   *field;
	char	   *schema;
	char	   *schema_type;
	char	   *error_code;
} EoAnswer;

static EO_JSON_ACTION
eo_answer_field(void *state, char *fname, bool isnull)
{
	EoAnswer   *a = (EoAnswer *) state;

	if (a->lex->lex_level == 1)
		a->field = fname;
	EO_JSON_ACTION_DONE;
}

static EO_JSON_ACTION
eo_answer_scalar(void *state, char *token, JsonTokenType type)
{
	EoAnswer   *a = (EoAnswer *) state;

	if (a->lex->lex_level != 1 || a->field == NULL)
		EO_JSON_ACTION_DONE;
	if (strcmp(a->field, "schema") == 0 && type == JSON_TOKEN_STRING)
		a->schema = token;
	else if (strcmp(a->field, "schemaType") == 0 && type == JSON_TOKEN_STRING)
		a->schema_type = token;
	else if (strcmp(a->field, "error_code") == 0 && type == JSON_TOKEN_NUMBER)
		a->error_code = token;
	EO_JSON_ACTION_DONE;
}

/*
 * Parse a registry's JSON answer without raising errors; false if not JSON
 * (or nested deeper than any registry answer).
 */
static bool
eo_parse_answer(const EoBody *body, EoAnswer *a)
{
	JsonSemAction sem = {0};

	memset(a, 0, sizeof(*a));
	if (body->data == NULL || !pg_verifymbstr(body->data, body->len, true) ||
		!eo_json_nesting_within(body->data, body->data + body->len, EO_REGISTRY_MAX_NESTING))
		return false;
	a->lex = eo_json_lexer_in(body->data, body->len, PG_UTF8, true);
	sem.semstate = a;
	sem.object_field_start = eo_answer_field;
	sem.scalar = eo_answer_scalar;
	return pg_parse_json(a->lex, &sem) == JSON_SUCCESS;
}

/* One GET against one URL; the handle is gone when this returns. */
static EoRegistryResult
eo_registry_get(const EoRegistryConf *conf, const char *base, int32 id,
				char **schema, char *err, size_t errlen)
{
	CURL	   *curl;
	CURLcode	rc;
	long		status = 0;
	EoBody		body = {0};
	char		curl_err[CURL_ERROR_SIZE] = "";
	char	   *url;
	EoAnswer	a;
	EoRegistryResult result;
	bool		json;

	url = psprintf("%s%sschemas/ids/%d", base,
				   base[0] != '\0' && base[strlen(base) - 1] == '/' ? "" : "/", id);

	curl = curl_easy_init();
	if (curl == NULL)
	{
		snprintf(err, errlen, "could not create a libcurl handle");
		return EO_REGISTRY_UNREACHABLE;
	}
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, curl_err);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, eo_curl_write);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
	curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, eo_curl_progress);
	curl_easy_setopt(curl, CURLOPT_XFERINFODATA, conf);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, conf->timeout_ms);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, Min(conf->timeout_ms, 5000L));
	curl_easy_setopt(curl, CURLOPT_USERAGENT, "eo_ingest");
	if (conf->user != NULL)
	{
		curl_easy_setopt(curl, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
		curl_easy_setopt(curl, CURLOPT_USERNAME, conf->user);
		curl_easy_setopt(curl, CURLOPT_PASSWORD, conf->password ? conf->password : "");
	}
	if (conf->ca_location != NULL)
		curl_easy_setopt(curl, CURLOPT_CAINFO, conf->ca_location);
	if (conf->cert_location != NULL)
		curl_easy_setopt(curl, CURLOPT_SSLCERT, conf->cert_location);
	if (conf->key_location != NULL)
		curl_easy_setopt(curl, CURLOPT_SSLKEY, conf->key_location);
	if (conf->key_password != NULL)
		curl_easy_setopt(curl, CURLOPT_KEYPASSWD, conf->key_password);
	if (!conf->verify_host)
		curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L);

	rc = curl_easy_perform(curl);
	if (rc == CURLE_OK)
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(curl);

	if (rc == CURLE_ABORTED_BY_CALLBACK)
	{
		free(body.data);
		CHECK_FOR_INTERRUPTS();
		snprintf(err, errlen, "schema registry request to %s interrupted", base);
		return EO_REGISTRY_UNREACHABLE;
	}
	if (rc != CURLE_OK && !body.too_big)
	{
		free(body.data);
		snprintf(err, errlen, "schema registry %s unreachable: %s", base,
				 curl_err[0] ? curl_err : curl_easy_strerror(rc));
		/* certificates that do not verify will not verify on the next try */
		return (rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE ||
				rc == CURLE_SSL_CERTPROBLEM || rc == CURLE_UNSUPPORTED_PROTOCOL) ?
			EO_REGISTRY_BROKEN : EO_REGISTRY_UNREACHABLE;
	}

	json = !body.too_big && eo_parse_answer(&body, &a);
	if (status == 200 && json && a.schema != NULL)
	{
		if (a.schema_type != NULL && strcmp(a.schema_type, "AVRO") != 0)
		{
			snprintf(err, errlen, "schema id %d in registry %s is a %s schema, not Avro",
					 id, base, a.schema_type);
			result = EO_REGISTRY_UNKNOWN_ID;
		}
		else
		{
			*schema = pstrdup(a.schema);
			result = EO_REGISTRY_FOUND;
		}
	}
	else if (status == 404 && json && a.error_code != NULL && strcmp(a.error_code, "40403") == 0)
	{
		snprintf(err, errlen, "schema id %d is not in the schema registry %s", id, base);
		result = EO_REGISTRY_UNKNOWN_ID;
	}
	else if (status >= 500 || status == 429 || status == 408)
	{
		snprintf(err, errlen, "schema registry %s answered HTTP %ld for schema id %d", base, status, id);
		result = EO_REGISTRY_UNREACHABLE;
	}
	else if (status == 401 || status == 403)
	{
		snprintf(err, errlen, "schema registry %s refused the credentials (HTTP %ld); "
				 "set kafka_options schema.registry.user and schema.registry.password",
				 base, status);
		result = EO_REGISTRY_BROKEN;
	}
	else
	{
		snprintf(err, errlen, "%s does not answer like a Confluent Schema Registry "
				 "(HTTP %ld%s for GET /schemas/ids/%d); check schema_registry",
				 base, status, body.too_big ? ", answer too large" :
				 json ? ", no schema in the answer" : ", not JSON", id);
		result = EO_REGISTRY_BROKEN;
	}
	free(body.data);
	return result;
}

/*
 * Fetch schema id from the first URL that answers.  An unreachable URL
 * passes the question to the next; a definite answer ends the search.
 */
EoRegistryResult
eo_registry_fetch(const EoRegistryConf *conf, int32 id, char **schema,
				  char *err, size_t errlen)
{
	EoRegistryResult result = EO_REGISTRY_UNREACHABLE;

	if (!eo_curl_ready)
	{
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		{
			snprintf(err, errlen, "could not initialize libcurl");
			return EO_REGISTRY_UNREACHABLE;
		}
		eo_curl_ready = true;
	}
	for (int i = 0; i < conf->nurls; i++)
	{
		result = eo_registry_get(conf, conf->urls[i], id, schema, err, errlen);
		if (result != EO_REGISTRY_UNREACHABLE)
			break;
	}
	return result;
}
