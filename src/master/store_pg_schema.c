/* The PostgreSQL backend's schema: the SQLite migrations (store_sqlite.c)
 * translated version for version, so both backends are at the same
 * schema version after the same releases.
 *
 * Translation rules: times, versions and generations are BIGINT; flags
 * are BOOLEAN; JSON columns stay TEXT (the master never queries inside
 * them, and text keeps what was written byte for byte, as SQLite does);
 * AUTOINCREMENT keys are identity columns. Unique constraints carry
 * names, because store_pg reads the violated constraint's name to say
 * which field clashed. Where SQLite relies on rowid for insertion order
 * (deploys), an identity column "seq" stands in.
 *
 * Adding a migration: add {version, sql} with the version SQLite's
 * migrations[] uses, keeping the array ordered by version (numbers may
 * have gaps, filled later in place); each runs once, in its own
 * transaction, under the migration advisory lock (store_pg.c).
 * SPDX-License-Identifier: Apache-2.0 */
#include "store_pg_int.h"
#include "../common/alloc.h"

const struct pg_migration pg_migrations[] = {
    {1,
     "CREATE TABLE config(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
     "CREATE TABLE kv(key TEXT PRIMARY KEY, value TEXT NOT NULL,"
     " version BIGINT NOT NULL);"
     "CREATE TABLE leases(name TEXT PRIMARY KEY, holder TEXT NOT NULL,"
     " expires_at BIGINT NOT NULL);"
     "CREATE TABLE users(id TEXT PRIMARY KEY,"
     " email TEXT NOT NULL CONSTRAINT users_email_key UNIQUE,"
     " name TEXT, roles BIGINT NOT NULL DEFAULT 0,"
     " created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL);"
     "CREATE TABLE access_tokens(id TEXT PRIMARY KEY,"
     " user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
     " kind INTEGER NOT NULL, token_hash TEXT NOT NULL, refresh_hash TEXT,"
     " token_last4 TEXT NOT NULL DEFAULT '',"
     " refresh_last4 TEXT NOT NULL DEFAULT '',"
     " scopes TEXT NOT NULL DEFAULT '', description TEXT,"
     " internal BOOLEAN NOT NULL DEFAULT false,"
     " is_bootstrap BOOLEAN NOT NULL DEFAULT false,"
     " parent_code_id TEXT NOT NULL DEFAULT '',"
     " expires_at BIGINT NOT NULL DEFAULT 0,"
     " created_at BIGINT NOT NULL,"
     " last_used_at BIGINT NOT NULL DEFAULT 0);"
     "CREATE INDEX access_tokens_token_hash ON access_tokens(token_hash);"
     "CREATE INDEX access_tokens_refresh_hash ON access_tokens(refresh_hash);"
     "CREATE INDEX access_tokens_user_id ON access_tokens(user_id);"
     "CREATE TABLE grids(id TEXT PRIMARY KEY,"
     " name TEXT NOT NULL CONSTRAINT grids_name_key UNIQUE,"
     " token_hash TEXT NOT NULL CONSTRAINT grids_token_hash_key UNIQUE,"
     " token_sealed TEXT,"
     " initial_size INTEGER NOT NULL, subnet TEXT, supernet TEXT,"
     " settings TEXT NOT NULL DEFAULT '{}',"
     " created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL);"
     "CREATE TABLE grid_users("
     " grid_id TEXT NOT NULL REFERENCES grids(id) ON DELETE CASCADE,"
     " user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
     " PRIMARY KEY(grid_id, user_id));"
     "CREATE INDEX grid_users_user_id ON grid_users(user_id);"
     "CREATE TABLE stacks(id TEXT PRIMARY KEY,"
     " grid_id TEXT NOT NULL REFERENCES grids(id) ON DELETE CASCADE,"
     " name TEXT NOT NULL, created_at BIGINT NOT NULL,"
     " updated_at BIGINT NOT NULL,"
     " CONSTRAINT stacks_grid_id_name_key UNIQUE(grid_id, name));"
     "CREATE TABLE networks(id TEXT PRIMARY KEY,"
     " grid_id TEXT NOT NULL REFERENCES grids(id) ON DELETE CASCADE,"
     " name TEXT NOT NULL, subnet TEXT,"
     " multicast BOOLEAN NOT NULL DEFAULT false,"
     " internal BOOLEAN NOT NULL DEFAULT false,"
     " CONSTRAINT networks_grid_id_name_key UNIQUE(grid_id, name));"
     "CREATE TABLE host_nodes(id TEXT PRIMARY KEY,"
     " grid_id TEXT REFERENCES grids(id) ON DELETE CASCADE,"
     " name TEXT, created_at BIGINT NOT NULL);"
     "CREATE INDEX host_nodes_grid_id ON host_nodes(grid_id);"
     "CREATE TABLE grid_services(id TEXT PRIMARY KEY,"
     " grid_id TEXT NOT NULL REFERENCES grids(id) ON DELETE CASCADE,"
     " stack_id TEXT REFERENCES stacks(id) ON DELETE CASCADE,"
     " name TEXT NOT NULL, created_at BIGINT NOT NULL);"
     "CREATE INDEX grid_services_grid_id ON grid_services(grid_id);"
     "CREATE INDEX grid_services_stack_id ON grid_services(stack_id);"
     /* PostgreSQL only: change-feed messages too big for a NOTIFY
      * payload (store_pg_feed.c). */
     "CREATE TABLE feed_messages("
     " id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
     " channel TEXT NOT NULL, payload TEXT NOT NULL,"
     " created_at BIGINT NOT NULL);"
     "CREATE INDEX feed_messages_created_at ON feed_messages(created_at);"},
    {2,
     /* Nodes proper (issue 3). Nothing wrote the placeholder table. */
     "DROP TABLE host_nodes;"
     "CREATE TABLE host_nodes(id TEXT PRIMARY KEY,"
     " grid_id TEXT NOT NULL REFERENCES grids(id) ON DELETE CASCADE,"
     " node_id TEXT CONSTRAINT host_nodes_node_id_key UNIQUE,"
     " name TEXT NOT NULL,"
     " node_number INTEGER NOT NULL,"
     " token_hash TEXT CONSTRAINT host_nodes_token_hash_key UNIQUE,"
     " token_sealed TEXT,"
     " labels TEXT NOT NULL DEFAULT '[]', info TEXT NOT NULL DEFAULT '{}',"
     " stats TEXT, availability TEXT NOT NULL DEFAULT 'active',"
     " agent_version TEXT, connected BOOLEAN NOT NULL DEFAULT false,"
     " updated BOOLEAN NOT NULL DEFAULT false,"
     " conn_gen BIGINT NOT NULL DEFAULT 0, conn_master TEXT,"
     " connected_at BIGINT NOT NULL DEFAULT 0,"
     " disconnected_at BIGINT NOT NULL DEFAULT 0,"
     " last_seen_at BIGINT NOT NULL DEFAULT 0,"
     " close_code INTEGER NOT NULL DEFAULT 0, close_reason TEXT,"
     " created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL,"
     " CONSTRAINT host_nodes_grid_id_name_key UNIQUE(grid_id, name),"
     " CONSTRAINT host_nodes_grid_id_node_number_key"
     " UNIQUE(grid_id, node_number));"
     "CREATE INDEX host_nodes_grid_id ON host_nodes(grid_id);"
     "CREATE TABLE host_node_stats("
     " id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
     " node_id TEXT NOT NULL REFERENCES host_nodes(id) ON DELETE CASCADE,"
     " stats TEXT NOT NULL, created_at BIGINT NOT NULL);"
     "CREATE INDEX host_node_stats_node ON host_node_stats(node_id, id);"},
    {3,
     /* Services, instances, deploys, containers, logs, events (issue 4).
      * Nothing wrote the placeholder grid_services. Optional ids are NULL,
      * never "". Instance and container node_id have no foreign key, so
      * a removed node can leave them detached. */
     "DROP TABLE grid_services;"
     "CREATE TABLE grid_services(id TEXT PRIMARY KEY,"
     " grid_id TEXT NOT NULL REFERENCES grids(id) ON DELETE CASCADE,"
     " stack_id TEXT NOT NULL REFERENCES stacks(id) ON DELETE CASCADE,"
     " name TEXT NOT NULL, spec TEXT NOT NULL DEFAULT '{}',"
     " revision BIGINT NOT NULL DEFAULT 1,"
     " stack_revision BIGINT NOT NULL DEFAULT 0,"
     " state TEXT NOT NULL DEFAULT 'initialized',"
     " deployed_at BIGINT NOT NULL DEFAULT 0,"
     " deploy_requested_at BIGINT NOT NULL DEFAULT 0,"
     " created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL,"
     " CONSTRAINT grid_services_stack_id_name_key UNIQUE(stack_id, name));"
     "CREATE INDEX grid_services_grid_id ON grid_services(grid_id);"
     "CREATE TABLE grid_service_instances(id TEXT PRIMARY KEY,"
     " service_id TEXT NOT NULL"
     " REFERENCES grid_services(id) ON DELETE CASCADE,"
     " instance_number INTEGER NOT NULL, node_id TEXT,"
     " desired_state TEXT NOT NULL DEFAULT 'running',"
     " deploy_rev TEXT, rev TEXT, state TEXT, error TEXT,"
     " updated_at BIGINT NOT NULL DEFAULT 0,"
     " CONSTRAINT grid_service_instances_number_key"
     " UNIQUE(service_id, instance_number));"
     "CREATE INDEX grid_service_instances_node"
     " ON grid_service_instances(node_id);"
     "CREATE TABLE grid_service_deploys(id TEXT PRIMARY KEY,"
     " seq BIGINT GENERATED ALWAYS AS IDENTITY,"
     " service_id TEXT NOT NULL"
     " REFERENCES grid_services(id) ON DELETE CASCADE,"
     " stack_deploy_id TEXT, state TEXT NOT NULL DEFAULT 'created',"
     " reason TEXT, force BOOLEAN NOT NULL DEFAULT false,"
     " instance_deploys TEXT NOT NULL DEFAULT '[]',"
     " claimed_by TEXT, lease_until BIGINT NOT NULL DEFAULT 0,"
     " created_at BIGINT NOT NULL, queued_at BIGINT NOT NULL DEFAULT 0,"
     " started_at BIGINT NOT NULL DEFAULT 0,"
     " finished_at BIGINT NOT NULL DEFAULT 0);"
     "CREATE INDEX grid_service_deploys_service"
     " ON grid_service_deploys(service_id, created_at);"
     "CREATE INDEX grid_service_deploys_state"
     " ON grid_service_deploys(state, created_at);"
     "CREATE TABLE containers(id TEXT PRIMARY KEY,"
     " grid_id TEXT NOT NULL REFERENCES grids(id) ON DELETE CASCADE,"
     " node_id TEXT, service_id TEXT,"
     " container_id TEXT NOT NULL CONSTRAINT containers_container_id_key"
     " UNIQUE,"
     " name TEXT NOT NULL, instance_number INTEGER NOT NULL DEFAULT 0,"
     " status TEXT, info TEXT NOT NULL DEFAULT '{}',"
     " created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL,"
     " deleted_at BIGINT NOT NULL DEFAULT 0);"
     "CREATE INDEX containers_grid_name ON containers(grid_id, name);"
     "CREATE INDEX containers_node ON containers(node_id);"
     "CREATE INDEX containers_service ON containers(service_id);"
     "CREATE TABLE container_logs("
     " seq BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
     " grid_id TEXT NOT NULL REFERENCES grids(id) ON DELETE CASCADE,"
     " node_id TEXT, service_id TEXT, container_id TEXT, name TEXT,"
     " type TEXT, data TEXT, created_at BIGINT NOT NULL);"
     "CREATE INDEX container_logs_grid ON container_logs(grid_id, seq);"
     "CREATE INDEX container_logs_service ON container_logs(service_id, seq);"
     "CREATE INDEX container_logs_name ON container_logs(name, seq);"
     "CREATE TABLE event_logs("
     " seq BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
     " grid_id TEXT NOT NULL REFERENCES grids(id) ON DELETE CASCADE,"
     " stack_id TEXT, service_id TEXT, node_id TEXT,"
     " severity INTEGER NOT NULL DEFAULT 1, type TEXT, message TEXT,"
     " meta TEXT, created_at BIGINT NOT NULL);"
     "CREATE INDEX event_logs_grid ON event_logs(grid_id, seq);"
     "CREATE INDEX event_logs_stack ON event_logs(stack_id, seq);"
     "CREATE INDEX event_logs_service ON event_logs(service_id, seq);"},
    {4,
     /* The revision the last deploy rolled out (see SQLite's 4). */
     "ALTER TABLE grid_services ADD COLUMN deployed_revision BIGINT "
     "NOT NULL DEFAULT 0;"},
    {5,
     /* The vault (spec 7): values are sealed text, never plaintext. */
     "CREATE TABLE grid_secrets(id TEXT PRIMARY KEY,"
     " grid_id TEXT NOT NULL REFERENCES grids(id) ON DELETE CASCADE,"
     " name TEXT NOT NULL, value TEXT NOT NULL,"
     " created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL,"
     " CONSTRAINT grid_secrets_grid_id_name_key UNIQUE(grid_id, name));"},
    {6,
     /* Stacks on the master (see SQLite's 6): labels, parent, newest
      * revision and removing flag on the stack; immutable revisions;
      * stack jobs claimed with a lease. "seq" stands in for SQLite's
      * rowid in the jobs' order. */
     "ALTER TABLE stacks ADD COLUMN labels TEXT NOT NULL DEFAULT '[]';"
     "ALTER TABLE stacks ADD COLUMN parent_name TEXT;"
     "ALTER TABLE stacks ADD COLUMN revision BIGINT NOT NULL DEFAULT 0;"
     "ALTER TABLE stacks ADD COLUMN removing BOOLEAN NOT NULL DEFAULT false;"
     "CREATE INDEX stacks_parent ON stacks(grid_id, parent_name);"
     "CREATE TABLE stack_revisions(id TEXT PRIMARY KEY,"
     " stack_id TEXT NOT NULL REFERENCES stacks(id) ON DELETE CASCADE,"
     " revision BIGINT NOT NULL, stack TEXT, version TEXT, registry TEXT,"
     " source TEXT, expose TEXT, variables TEXT NOT NULL DEFAULT '{}',"
     " services TEXT NOT NULL DEFAULT '[]',"
     " volumes TEXT NOT NULL DEFAULT '[]',"
     " metadata TEXT NOT NULL DEFAULT '{}', created_at BIGINT NOT NULL,"
     " CONSTRAINT stack_revisions_stack_id_revision_key"
     " UNIQUE(stack_id, revision));"
     "CREATE TABLE stack_deploys(id TEXT PRIMARY KEY,"
     " seq BIGINT GENERATED ALWAYS AS IDENTITY,"
     " stack_id TEXT NOT NULL REFERENCES stacks(id) ON DELETE CASCADE,"
     " action TEXT NOT NULL DEFAULT 'deploy',"
     " revision BIGINT NOT NULL DEFAULT 0,"
     " state TEXT NOT NULL DEFAULT 'created', reason TEXT,"
     " service_deploys TEXT NOT NULL DEFAULT '[]',"
     " claimed_by TEXT, lease_until BIGINT NOT NULL DEFAULT 0,"
     " created_at BIGINT NOT NULL, started_at BIGINT NOT NULL DEFAULT 0,"
     " finished_at BIGINT NOT NULL DEFAULT 0);"
     "CREATE INDEX stack_deploys_stack ON stack_deploys(stack_id, created_at);"
     "CREATE INDEX stack_deploys_state ON stack_deploys(state, created_at);"
     "CREATE INDEX grid_service_deploys_stack_deploy"
     " ON grid_service_deploys(stack_deploy_id);"},
    {7,
     /* External registries (password sealed by the master) and the audit
      * log. Audit rows keep the grid's id and name without a foreign key:
      * they outlive the grid they tell about. seq is never reused (as
      * SQLite's AUTOINCREMENT). */
     "CREATE TABLE registries(id TEXT PRIMARY KEY,"
     " grid_id TEXT NOT NULL REFERENCES grids(id) ON DELETE CASCADE,"
     " name TEXT NOT NULL, url TEXT NOT NULL, username TEXT NOT NULL,"
     " password_sealed TEXT NOT NULL, email TEXT,"
     " created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL,"
     " CONSTRAINT registries_grid_id_name_key UNIQUE(grid_id, name));"
     "CREATE TABLE audit_logs("
     " seq BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
     " grid_id TEXT, grid_name TEXT, user_id TEXT, user_email TEXT,"
     " resource_type TEXT, resource_id TEXT, resource_name TEXT,"
     " service_id TEXT, event_name TEXT, event_status TEXT,"
     " status INTEGER NOT NULL DEFAULT 0, method TEXT, path TEXT,"
     " source_ip TEXT, user_agent TEXT, request_body TEXT,"
     " created_at BIGINT NOT NULL);"
     "CREATE INDEX audit_logs_grid ON audit_logs(grid_id, seq);"},
};

const size_t pg_nmigrations = CP_ARRAY_LEN(pg_migrations);
