/*
 * dbhold.h
 *		Stopping a database's pipelines for the commands that need the
 *		database to themselves.
 */
#ifndef EO_DBHOLD_H
#define EO_DBHOLD_H

extern void eo_dbhold_init(void);
extern bool eo_database_held(Oid database);
extern void eo_dbhold_check_copy(void);

#endif							/* EO_DBHOLD_H */
