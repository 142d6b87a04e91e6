/* The C side of the iungo module: the ValkeyModule API entries it uses,
 * declared here from the public API's names, signatures and constants, and
 * the small helpers Go calls. Go never hands C a pointer to keep. */
#ifndef IUNGO_SHIM_H
#define IUNGO_SHIM_H

#include <stddef.h>
#include <stdint.h>

typedef struct ValkeyModuleCtx ValkeyModuleCtx;
typedef struct ValkeyModuleString ValkeyModuleString;
typedef struct ValkeyModuleInfoCtx ValkeyModuleInfoCtx;

/* What may fire a trigger (module.Filter): event classes (0 stops every
 * event in C; the shim subscribes to a class when it first appears), all event names or the n names packed in names, and, unless
 * keys_len is 0 (unchanged), the key filter: Any, First1, Last1, First2 and
 * Last2 of router.KeyFilter, one byte and four bitmaps. */
void iungo_set_filter(int classes, int all_events, const char *names, const size_t *lens, int n,
                      const unsigned char *keys, size_t keys_len);

/* Context queries and actions, valid during the callback that got ctx. */
int iungo_ctx_flags(ValkeyModuleCtx *ctx);
int iungo_selected_db(ValkeyModuleCtx *ctx);
void iungo_replicate_verbatim(ValkeyModuleCtx *ctx);

/* iungo_call runs argv (argc strings packed in buf, lens[i] bytes each) and
 * returns its reply serialised as described in ctx.go, in a buffer the
 * next call reuses. */
char *iungo_call(ValkeyModuleCtx *ctx, const char *buf, const size_t *lens, int argc, size_t *outlen);
void iungo_free(void *p);

/* Runs the rest of a job's calls as the named ACL user instead of the
 * module's own user, which every job starts with. Returns 0 if there is no
 * such user. The job's end detaches it. */
int iungo_attach_user(ValkeyModuleCtx *ctx, const char *name, size_t len);

/* Key positions and VALKEYMODULE_CMD_KEY_* flags of a command packed as for
 * iungo_call; returns how many (at most max), or -1 if unknown. */
int iungo_command_keys(ValkeyModuleCtx *ctx, const char *buf, const size_t *lens, int argc, int *pos, int *flags,
                       int max);

/* Signals: remembers the Go runtime's handlers at load and puts them back
 * whenever the server installs its own again (CONFIG SET crash-log-enabled
 * does). */
int iungo_keep_go_signal_handlers(ValkeyModuleCtx *ctx);

/* A server config value as a malloc'd string (free with iungo_free), or NULL. */
char *iungo_config_get(ValkeyModuleCtx *ctx, const char *name, size_t *len);

/* Command arguments. */
const char *iungo_arg(ValkeyModuleString **argv, int i, size_t *len);

/* Replies. */
void iungo_reply_error(ValkeyModuleCtx *ctx, const char *msg, size_t len);
void iungo_reply_status(ValkeyModuleCtx *ctx, const char *msg, size_t len);
void iungo_reply_int(ValkeyModuleCtx *ctx, long long n);
void iungo_reply_string(ValkeyModuleCtx *ctx, const char *s, size_t len);
void iungo_reply_array(ValkeyModuleCtx *ctx, long n);
void iungo_reply_map(ValkeyModuleCtx *ctx, long n);

/* Logging, from any thread; level is debug, verbose, notice or warning. */
void iungo_log(const char *level, const char *msg, size_t len);

/* Registration, during OnLoad only. The ACL category is created when the
 * server supports module categories (Valkey 8.0+); returns 0 otherwise. */
int iungo_add_acl_category(ValkeyModuleCtx *ctx);
/* categories replaces those the flags would imply; "" keeps them. */
int iungo_create_subcommand(ValkeyModuleCtx *ctx, const char *name, const char *flags, const char *categories);
int iungo_register_numeric(ValkeyModuleCtx *ctx, const char *name, long long def, long long min, long long max,
                           int idx);
int iungo_register_string(ValkeyModuleCtx *ctx, const char *name, const char *def, int idx, int sensitive);
int iungo_load_configs(ValkeyModuleCtx *ctx);
int iungo_register_info(ValkeyModuleCtx *ctx);

/* INFO fields, during the info callback. */
void iungo_info_section(ValkeyModuleInfoCtx *ctx);
void iungo_info_int(ValkeyModuleInfoCtx *ctx, const char *name, size_t namelen, long long v);
void iungo_info_string(ValkeyModuleInfoCtx *ctx, const char *name, size_t namelen, const char *v, size_t len);

/* The server's version as 0x00MMmmpp. */
int iungo_server_version(void);

/* Persistence, during OnLoad: the aux data type that carries the
 * configuration in RDB files, and the server events around loading,
 * forking and shutdown (goShutdown). atomic_slot_migration declares that
 * the module handles CLUSTER MIGRATESLOTS (9.0+). */
int iungo_register_persistence(ValkeyModuleCtx *ctx, int atomic_slot_migration);
/* The wording of the errors of calls that never ran, as this server's own
 * Lua words them; copied. */
void iungo_set_script_errors(const char *not_allowed, const char *wrong_arity, const char *unknown);
/* Runs goAfterStartup once the event loop runs, after the startup load. */
void iungo_after_startup(ValkeyModuleCtx *ctx);

/* The configuration as records, framed by aux_save2 in the forked child
 * where Go must not run. Handles are opaque to Go; 0 means "new". Build
 * may run on any thread: records packed in buf end at ends[i]; handles
 * receives one handle each. Swap makes a built store current and frees
 * the old one. */
uint64_t iungo_store_put(uint64_t handle, const char *rec, size_t len);
void iungo_store_delete(uint64_t handle);
void iungo_store_set_header(const char *rec, size_t len, int is_default);
uint64_t iungo_store_build(const char *buf, const size_t *ends, size_t n, uint64_t *handles);
void iungo_store_swap(uint64_t image);
void iungo_store_discard(uint64_t image);

/* Blocks the client of the current command until iungo_unblock; returns
 * NULL where it cannot block (MULTI, scripts). The reply callback calls
 * goFinishBlocked with id. Unblock may be called from any thread. */
void *iungo_block(ValkeyModuleCtx *ctx);
void iungo_unblock(void *bc, uint64_t id);

/* The server's global lock, for goroutines: a context to use while it is
 * held. Never from the main thread. */
ValkeyModuleCtx *iungo_lock(void);
void iungo_unlock(ValkeyModuleCtx *ctx);

/* Propagates IUNGO RESTORE <snapshot>: to the AOF only when aof_only. */
void iungo_replicate_restore(ValkeyModuleCtx *ctx, const char *snap, size_t len, int aof_only);
/* Propagates a command packed as for iungo_call to replicas and the AOF. */
void iungo_replicate(ValkeyModuleCtx *ctx, const char *buf, const size_t *lens, int argc);
/* Whether writes are paused (CLIENT PAUSE WRITE|ALL, FAILOVER, a manual
 * cluster failover): replicating anything then aborts the server. */
int iungo_writes_paused(void);
/* Whether the server would refuse a write that may grow memory now, by
 * the rule it applies to scripts. */
int iungo_out_of_memory(ValkeyModuleCtx *ctx);
/* Calls goOldValueWanted and goOldValue when a key's value goes. */
int iungo_watch_key_values(ValkeyModuleCtx *ctx);
/* Whether the script user of the job in progress may run a command: 1
 * yes, 0 no, -1 no such command. */
int iungo_acl_check(ValkeyModuleCtx *ctx, const char *buf, const size_t *lens, int argc);
/* In cluster mode: skip the events of slot migration (see shim.c);
 * command_names when notifications run on the command's client (8.1+). */
int iungo_watch_migrations(ValkeyModuleCtx *ctx, int command_names);
long long iungo_migration_events(void);
/* Calls goRoleChanged when the node becomes a primary or a replica. */
int iungo_watch_role(ValkeyModuleCtx *ctx);
/* host:port of the primary a replica follows, in buf; its length or 0. */
size_t iungo_primary_address(ValkeyModuleCtx *ctx, char *buf, size_t size);
/* Whether the command is flagged readonly (COMMAND INFO). */
int iungo_command_readonly(ValkeyModuleCtx *ctx, const char *name, size_t len);
/* This node's cluster id, in buf; its length or 0. */
size_t iungo_cluster_myid(ValkeyModuleCtx *ctx, char *buf, size_t size);
/* Calls goTimer(id) on the main thread in ms milliseconds. */
void iungo_timer(ValkeyModuleCtx *ctx, long long ms, uint64_t id);
void iungo_run_begin(ValkeyModuleCtx *ctx);
void iungo_run_end(ValkeyModuleCtx *ctx);
/* Whether an AOF rewrite child is running (INFO persistence). */
int iungo_aof_rewrite_in_progress(ValkeyModuleCtx *ctx);

#endif
