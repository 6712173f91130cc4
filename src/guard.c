/*
 * guard.c
 *		What an ordinary role may not make the server do through eo_ingest:
 *		kafka_options that load code or run commands, and secrets in the
 *		server log.
 *
 * librdkafka loads shared libraries named by plugin.library.paths and
 * ssl.engine.location (and OpenSSL providers by name), and runs
 * sasl.kerberos.kinit.cmd through the shell with sasl.kerberos.* values
 * interpolated.  Any of these in a non-superuser's kafka_options would run
 * code as the server's operating-system user, so only superusers may set
 * them.  The SQL-callable functions that hand options to librdkafka
 * (src/kafka_sql.c; rd_kafka_conf_set loads plugins at once) and the catalog
 * functions that store them (src/catalog.c) refuse them to non-superusers
 * with an error; eo_kafka_conf refuses them unless its caller vouches that
 * the role is a superuser, so a pipeline row written through an older catalog
 * (0.1 let PUBLIC insert into eo_ingest.pipelines), or whose owner has since
 * lost superuser, never reaches librdkafka with them.
 *
 * The log hook keeps kafka_options secrets out of the server log: a failing
 * statement that calls eo_ingest and names a secret property is logged
 * without its text (log_min_error_statement), and so is a logged statement
 * (log_statement, log_min_duration_statement).
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "tcop/tcopprot.h"
#include "utils/elog.h"
#include "utils/jsonb.h"

#include "guard.h"

static emit_log_hook_type prev_emit_log_hook = NULL;

static bool
eo_guard_forbidden_key(const char *key)
{
	return pg_strcasecmp(key, "plugin.library.paths") == 0 ||
		pg_strcasecmp(key, "ssl.engine.location") == 0 ||
		pg_strcasecmp(key, "ssl.providers") == 0 ||
		pg_strncasecmp(key, "sasl.kerberos.", 14) == 0;
}

/*
 * The first option in options that loads code or runs commands, described
 * for a message ("property \"plugin.library.paths\""), or NULL if none.
 */
char *
eo_guard_code_option(Jsonb *options)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	char	   *key = NULL;

	if (options == NULL || !JB_ROOT_IS_OBJECT(options))
		return NULL;
	it = JsonbIteratorInit(&options->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			key = pnstrdup(v.val.string.val, v.val.string.len);
			if (eo_guard_forbidden_key(key))
				return psprintf("property \"%s\"", key);
		}
		else if (tok == WJB_VALUE && key != NULL && v.type == jbvString &&
				 (pg_strcasecmp(key, "sasl.mechanism") == 0 ||
				  pg_strcasecmp(key, "sasl.mechanisms") == 0) &&
				 v.val.string.len == 6 &&
				 pg_strncasecmp(v.val.string.val, "GSSAPI", 6) == 0)
			return psprintf("\"%s\": \"GSSAPI\"", key);
	}
	return NULL;
}

/* Refuses options a non-superuser may not set. */
void
eo_guard_options(Jsonb *options)
{
	char	   *what;

	if (superuser() || (what = eo_guard_code_option(options)) == NULL)
		return;
	if (what[0] == 'p')
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("only superusers may set kafka_options %s", what),
				 errdetail("With it, librdkafka loads code or runs commands in the database server."),
				 errhint("Ask a superuser to create or alter the pipeline.")));
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("only superusers may use kafka_options %s", what),
			 errdetail("Kerberos makes librdkafka run a kinit command in the database server."),
			 errhint("Use PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER, or ask a superuser.")));
}

/* Case-insensitive strstr. */
static bool
eo_guard_contains(const char *s, const char *word)
{
	size_t		n = strlen(word);

	for (; *s; s++)
		if (pg_strncasecmp(s, word, n) == 0)
			return true;
	return false;
}

/* Could this text carry kafka_options secrets given to eo_ingest? */
static bool
eo_guard_may_show_secrets(const char *s)
{
	return s != NULL && eo_guard_contains(s, "eo_ingest") &&
		(eo_guard_contains(s, "password") || eo_guard_contains(s, "secret") ||
		 eo_guard_contains(s, "sasl.oauthbearer.config") ||
		 eo_guard_contains(s, "ssl.key.pem") || eo_guard_contains(s, "ssl_key"));
}

static void
eo_guard_emit_log(ErrorData *edata)
{
	if (edata->output_to_server)
	{
		if (!edata->hide_stmt && eo_guard_may_show_secrets(debug_query_string))
			edata->hide_stmt = true;
		if (edata->message != NULL &&
			(strncmp(edata->message, "statement: ", 11) == 0 ||
			 strncmp(edata->message, "execute ", 8) == 0 ||
			 strncmp(edata->message, "duration: ", 10) == 0) &&
			eo_guard_may_show_secrets(edata->message))
			edata->message = pstrdup("statement not logged: it calls eo_ingest with kafka_options that may hold secrets");
		if (eo_guard_may_show_secrets(edata->detail_log))
			edata->detail_log = NULL;
	}
	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
}

void
eo_guard_init(void)
{
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = eo_guard_emit_log;
}
