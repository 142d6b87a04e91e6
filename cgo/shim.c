/* The thin C shim of the iungo module: it resolves the API entries, exports
 * ValkeyModule_OnLoad, drops events no trigger can want before they reach
 * Go, and turns Go's requests into API calls. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <stdio.h>

#include "shim.h"
#include "_cgo_export.h"

/* ---- Public API facts: constants and the entries the module uses. ---- */

#define VALKEYMODULE_OK 0
#define VALKEYMODULE_ERR 1
#define VALKEYMODULE_APIVER_1 1

#define VALKEYMODULE_REPLY_STRING 0
#define VALKEYMODULE_REPLY_ERROR 1
#define VALKEYMODULE_REPLY_INTEGER 2
#define VALKEYMODULE_REPLY_ARRAY 3
#define VALKEYMODULE_REPLY_NULL 4

#define VALKEYMODULE_CONFIG_DEFAULT 0
#define VALKEYMODULE_CONFIG_SENSITIVE (1 << 1)

#define VALKEYMODULE_TYPE_METHOD_VERSION 5
#define VALKEYMODULE_AUX_BEFORE_RDB (1 << 0)
#define VALKEYMODULE_OPTIONS_HANDLE_IO_ERRORS (1 << 0)
#define VALKEYMODULE_OPTIONS_HANDLE_ATOMIC_SLOT_MIGRATION (1 << 5)
#define VALKEYMODULE_CMDFILTER_NOSELF (1 << 0)
#define VALKEYMODULE_EVENT_REPLICATION_ROLE_CHANGED 0
#define VALKEYMODULE_EVENT_LOADING 3
#define VALKEYMODULE_EVENT_SHUTDOWN 5
#define VALKEYMODULE_EVENT_FORK_CHILD 13
#define VALKEYMODULE_EVENT_KEY 17
#define VALKEYMODULE_READ (1 << 0)
#define VALKEYMODULE_KEYTYPE_STRING 1
#define VALKEYMODULE_KEYTYPE_LIST 2
#define VALKEYMODULE_KEYTYPE_HASH 3
#define VALKEYMODULE_KEYTYPE_SET 4
#define VALKEYMODULE_KEYTYPE_ZSET 5
#define VALKEYMODULE_SUBEVENT_LOADING_RDB_START 0
#define VALKEYMODULE_SUBEVENT_LOADING_AOF_START 1
#define VALKEYMODULE_SUBEVENT_LOADING_REPL_START 2
#define VALKEYMODULE_SUBEVENT_FORK_CHILD_BORN 0
#define VALKEYMODULE_EVENT_CONFIG 16
#define VALKEYMODULE_CMD_KEY_RW (1 << 1)
#define VALKEYMODULE_CMD_KEY_OW (1 << 2)
#define VALKEYMODULE_CMD_KEY_RM (1 << 3)

typedef struct ValkeyModuleCallReply ValkeyModuleCallReply;
typedef struct ValkeyModuleCommand ValkeyModuleCommand;
typedef struct ValkeyModuleIO ValkeyModuleIO;
typedef struct ValkeyModuleType ValkeyModuleType;
typedef struct ValkeyModuleServerInfoData ValkeyModuleServerInfoData;
typedef uint64_t ValkeyModuleTimerID;
typedef struct ValkeyModuleUser ValkeyModuleUser;
typedef struct ValkeyModuleBlockedClient ValkeyModuleBlockedClient;
typedef struct ValkeyModuleKey ValkeyModuleKey;
typedef struct ValkeyModuleScanCursor ValkeyModuleScanCursor;
typedef struct {
    uint64_t version;
    ValkeyModuleKey *key;
} ValkeyModuleKeyInfoV1;
typedef void (*ValkeyModuleScanKeyCB)(ValkeyModuleKey *key, ValkeyModuleString *field, ValkeyModuleString *value,
                                      void *privdata);
#define VALKEYMODULE_CTX_FLAGS_REPLICA (1 << 3)
#define VALKEYMODULE_CTX_FLAGS_REPLICATED (1 << 12)
#define VALKEYMODULE_CTX_FLAGS_LOADING (1 << 13)
#define VALKEYMODULE_CTX_FLAGS_LUA (1 << 0)
#define VALKEYMODULE_CTX_FLAGS_MULTI (1 << 1)
#define VALKEYMODULE_CTX_FLAGS_DENY_BLOCKING (1 << 21)
typedef ValkeyModuleString *(*ValkeyModuleConfigGetStringFunc)(const char *name, void *privdata);
typedef int (*ValkeyModuleConfigSetStringFunc)(const char *name, ValkeyModuleString *val, void *privdata,
                                               ValkeyModuleString **err);

typedef struct {
    uint64_t id;
    uint64_t dataver;
} ValkeyModuleEvent;

typedef void (*ValkeyModuleEventCallback)(ValkeyModuleCtx *ctx, ValkeyModuleEvent eid, uint64_t subevent, void *data);
typedef void (*ValkeyModuleTimerProc)(ValkeyModuleCtx *ctx, void *data);
typedef int (*ValkeyModuleTypeAuxLoadFunc)(ValkeyModuleIO *rdb, int encver, int when);
typedef void (*ValkeyModuleTypeAuxSaveFunc)(ValkeyModuleIO *rdb, int when);

/* The type methods layout of API version 5; unused entries stay NULL. */
typedef struct {
    uint64_t version;
    void *rdb_load, *rdb_save, *aof_rewrite, *mem_usage, *digest, *free;
    ValkeyModuleTypeAuxLoadFunc aux_load;
    ValkeyModuleTypeAuxSaveFunc aux_save;
    int aux_save_triggers;
    void *free_effort, *unlink, *copy, *defrag;
    void *mem_usage2, *free_effort2, *unlink2, *copy2;
    ValkeyModuleTypeAuxSaveFunc aux_save2;
} ValkeyModuleTypeMethods;

typedef int (*ValkeyModuleCmdFunc)(ValkeyModuleCtx *ctx, ValkeyModuleString **argv, int argc);
typedef int (*ValkeyModuleNotificationFunc)(ValkeyModuleCtx *ctx, int type, const char *event,
                                            ValkeyModuleString *key);
typedef void (*ValkeyModulePostNotificationJobFunc)(ValkeyModuleCtx *ctx, void *pd);
typedef long long (*ValkeyModuleConfigGetNumericFunc)(const char *name, void *privdata);
typedef int (*ValkeyModuleConfigSetNumericFunc)(const char *name, long long val, void *privdata,
                                                ValkeyModuleString **err);
typedef int (*ValkeyModuleConfigApplyFunc)(ValkeyModuleCtx *ctx, void *privdata, ValkeyModuleString **err);
typedef void (*ValkeyModuleInfoFunc)(ValkeyModuleInfoCtx *ctx, int for_crash_report);

static int (*GetApi)(const char *, void *);
static void (*SetModuleAttribs)(ValkeyModuleCtx *, const char *, int, int);
static int (*IsModuleNameBusy)(const char *);
static void (*Log)(ValkeyModuleCtx *, const char *, const char *, ...);
static int (*CreateCommand)(ValkeyModuleCtx *, const char *, ValkeyModuleCmdFunc, const char *, int, int, int);
static ValkeyModuleCommand *(*GetCommand)(ValkeyModuleCtx *, const char *);
static int (*CreateSubcommand)(ValkeyModuleCommand *, const char *, ValkeyModuleCmdFunc, const char *, int, int,
                               int);
static int (*SubscribeToKeyspaceEvents)(ValkeyModuleCtx *, int, ValkeyModuleNotificationFunc);
static int (*AddPostNotificationJob)(ValkeyModuleCtx *, ValkeyModulePostNotificationJobFunc, void *,
                                     void (*)(void *));
static int (*GetContextFlags)(ValkeyModuleCtx *);
static const ValkeyModuleString *(*GetKeyNameFromModuleKey)(ValkeyModuleKey *);
static int (*KeyType)(ValkeyModuleKey *);
static size_t (*ValueLength)(ValkeyModuleKey *);
static char *(*StringDMA)(ValkeyModuleKey *, size_t *, int);
static ValkeyModuleString *(*ListGet)(ValkeyModuleKey *, long);
static ValkeyModuleScanCursor *(*ScanCursorCreate)(void);
static void (*ScanCursorDestroy)(ValkeyModuleScanCursor *);
static int (*ScanKey)(ValkeyModuleKey *, ValkeyModuleScanCursor *, ValkeyModuleScanKeyCB, void *);
static int (*GetSelectedDb)(ValkeyModuleCtx *);
static int (*ReplicateVerbatim)(ValkeyModuleCtx *);
static const char *(*StringPtrLen)(const ValkeyModuleString *, size_t *);
static ValkeyModuleString *(*CreateString)(ValkeyModuleCtx *, const char *, size_t);
static void (*FreeString)(ValkeyModuleCtx *, ValkeyModuleString *);
static ValkeyModuleCallReply *(*Call)(ValkeyModuleCtx *, const char *, const char *, ...);
static int (*CallReplyType)(ValkeyModuleCallReply *);
static long long (*CallReplyInteger)(ValkeyModuleCallReply *);
static const char *(*CallReplyStringPtr)(ValkeyModuleCallReply *, size_t *);
static const char *(*CallReplyProto)(ValkeyModuleCallReply *, size_t *);
static size_t (*CallReplyLength)(ValkeyModuleCallReply *);
static ValkeyModuleCallReply *(*CallReplyArrayElement)(ValkeyModuleCallReply *, size_t);
static void (*FreeCallReply)(ValkeyModuleCallReply *);
static int (*ReplyWithError)(ValkeyModuleCtx *, const char *);
static int (*ReplyWithSimpleString)(ValkeyModuleCtx *, const char *);
static int (*ReplyWithLongLong)(ValkeyModuleCtx *, long long);
static int (*ReplyWithStringBuffer)(ValkeyModuleCtx *, const char *, size_t);
static int (*ReplyWithArray)(ValkeyModuleCtx *, long);
static int (*ReplyWithMap)(ValkeyModuleCtx *, long);
static int (*RegisterNumericConfig)(ValkeyModuleCtx *, const char *, long long, unsigned int, long long, long long,
                                    ValkeyModuleConfigGetNumericFunc, ValkeyModuleConfigSetNumericFunc,
                                    ValkeyModuleConfigApplyFunc, void *);
static int (*LoadConfigs)(ValkeyModuleCtx *);
static int (*RegisterInfoFunc)(ValkeyModuleCtx *, ValkeyModuleInfoFunc);
static int (*InfoAddSection)(ValkeyModuleInfoCtx *, const char *);
static int (*InfoAddFieldLongLong)(ValkeyModuleInfoCtx *, const char *, long long);
static int (*InfoAddFieldCString)(ValkeyModuleInfoCtx *, const char *, const char *);
static int (*GetServerVersion)(void);
static ValkeyModuleCtx *(*GetDetachedThreadSafeContext)(ValkeyModuleCtx *);
static ValkeyModuleType *(*CreateDataType)(ValkeyModuleCtx *, const char *, int, ValkeyModuleTypeMethods *);
static void (*SaveStringBuffer)(ValkeyModuleIO *, const char *, size_t);
static char *(*LoadStringBuffer)(ValkeyModuleIO *, size_t *);
static int (*IsIOError)(ValkeyModuleIO *);
static void (*Free)(void *);
static void (*SetModuleOptions)(ValkeyModuleCtx *, int);
static int (*SubscribeToServerEvent)(ValkeyModuleCtx *, ValkeyModuleEvent, ValkeyModuleEventCallback);
static ValkeyModuleServerInfoData *(*GetServerInfo)(ValkeyModuleCtx *, const char *);
static long long (*ServerInfoGetFieldSigned)(ValkeyModuleServerInfoData *, const char *, int *);
static void (*FreeServerInfo)(ValkeyModuleCtx *, ValkeyModuleServerInfoData *);
static ValkeyModuleTimerID (*CreateTimer)(ValkeyModuleCtx *, long long, ValkeyModuleTimerProc, void *);
static int (*Replicate)(ValkeyModuleCtx *, const char *, const char *, ...);
static int (*RegisterStringConfig)(ValkeyModuleCtx *, const char *, const char *, unsigned int,
                                   ValkeyModuleConfigGetStringFunc, ValkeyModuleConfigSetStringFunc,
                                   ValkeyModuleConfigApplyFunc, void *);
static int (*SetCommandACLCategories)(ValkeyModuleCommand *, const char *);
static int (*AddACLCategory)(ValkeyModuleCtx *, const char *); /* Valkey 8.0+, else NULL */
static int (*ACLCheckCommandPermissions)(ValkeyModuleUser *, ValkeyModuleString **, int);
static ValkeyModuleUser *(*CreateModuleUser)(const char *);
static int (*SetModuleUserACL)(ValkeyModuleUser *, const char *);
static ValkeyModuleUser *(*GetModuleUserFromUserName)(ValkeyModuleString *);
static void (*FreeModuleUser)(ValkeyModuleUser *);
static void (*SetContextUser)(ValkeyModuleCtx *, const ValkeyModuleUser *);
static int *(*GetCommandKeysWithFlags)(ValkeyModuleCtx *, ValkeyModuleString **, int, int *, int **);
static ValkeyModuleBlockedClient *(*BlockClient)(ValkeyModuleCtx *, ValkeyModuleCmdFunc, ValkeyModuleCmdFunc,
                                                 void (*)(ValkeyModuleCtx *, void *), long long);
static int (*UnblockClient)(ValkeyModuleBlockedClient *, void *);
static void *(*GetBlockedClientPrivateData)(ValkeyModuleCtx *);
static ValkeyModuleCtx *(*GetThreadSafeContext)(ValkeyModuleBlockedClient *);
static void (*FreeThreadSafeContext)(ValkeyModuleCtx *);
static void (*ThreadSafeContextLock)(ValkeyModuleCtx *);
static void (*ThreadSafeContextUnlock)(ValkeyModuleCtx *);
static int (*AvoidReplicaTraffic)(void);
typedef struct ValkeyModuleCommandFilterCtx ValkeyModuleCommandFilterCtx;
typedef struct ValkeyModuleCommandFilter ValkeyModuleCommandFilter;
static ValkeyModuleCommandFilter *(*RegisterCommandFilter)(ValkeyModuleCtx *, void (*)(ValkeyModuleCommandFilterCtx *),
                                                            int);
static ValkeyModuleString *(*CommandFilterArgGet)(ValkeyModuleCommandFilterCtx *, int);
static const char *(*GetCurrentCommandName)(ValkeyModuleCtx *);
static const char *(*ServerInfoGetFieldC)(ValkeyModuleServerInfoData *, const char *);

#define IUNGO_MODULE_NAME "iungo"
#define IUNGO_MODULE_VERSION 100 /* 0.1.0 */

/* A context for log lines from any thread, with the module's name. */
static ValkeyModuleCtx *log_ctx;

/* ---- The event filter ----
 * What Go's module.Filter says can fire a trigger: event classes, event
 * names and the keys' literal ends (router.KeyFilter). Every other event
 * stops in on_event without a call into Go. Only the main thread reads and
 * writes it. */
static int filter_classes, subscribed_classes;
static int filter_all_events;

/* The wanted event names: an open-addressing set over one copy of them. */
#define EVENT_SLOTS 256
static struct {
    const char *name;
    size_t len;
} event_slots[EVENT_SLOTS];
static char *event_names;

/* The KeyFilter: Any, then the First1, Last1, First2 and Last2 bitmaps. */
#define KEY_FILTER_BYTES (1 + 32 + 32 + 8192 + 8192)
static unsigned char key_filter[KEY_FILTER_BYTES];
#define KF_ANY (key_filter[0])
#define KF_FIRST1 (key_filter + 1)
#define KF_LAST1 (key_filter + 33)
#define KF_FIRST2 (key_filter + 65)
#define KF_LAST2 (key_filter + 65 + 8192)
#define BIT(map, i) ((map)[(i) >> 3] >> ((i) & 7) & 1)

static int on_event(ValkeyModuleCtx *ctx, int type, const char *event, ValkeyModuleString *key);

static uint32_t event_hash(const char *s, size_t n) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static int event_wanted(const char *event) {
    if (filter_all_events) return 1;
    size_t n = strlen(event);
    for (uint32_t i = event_hash(event, n) & (EVENT_SLOTS - 1);; i = (i + 1) & (EVENT_SLOTS - 1)) {
        if (!event_slots[i].name) return 0;
        if (event_slots[i].len == n && memcmp(event_slots[i].name, event, n) == 0) return 1;
    }
}

/* Mirrors router.KeyFilter.MayMatch. */
static int key_may_match(const unsigned char *k, size_t n) {
    if (KF_ANY) return 1;
    if (n == 0) return 0;
    if (BIT(KF_FIRST1, k[0]) || BIT(KF_LAST1, k[n - 1])) return 1;
    return n >= 2 && (BIT(KF_FIRST2, k[0] << 8 | k[1]) || BIT(KF_LAST2, k[n - 2] << 8 | k[n - 1]));
}

void iungo_set_filter(int classes, int all_events, const char *names, const size_t *lens, int n,
                      const unsigned char *keys, size_t keys_len) {
    filter_classes = classes;
    /* Subscribe to a class when a trigger first needs it: until then its
     * events cost the server nothing. There is no way to unsubscribe; the
     * filter drops events no longer wanted. New subscriptions cover only
     * the missing classes, so no event is delivered twice. */
    int missing = classes & ~subscribed_classes;
    if (missing && SubscribeToKeyspaceEvents(log_ctx, missing, on_event) == VALKEYMODULE_OK)
        subscribed_classes |= missing;
    if (keys_len == KEY_FILTER_BYTES) memcpy(key_filter, keys, KEY_FILTER_BYTES);
    else if (keys_len) KF_ANY = 1; /* a layout this shim does not know: let Go decide */
    size_t total = 0;
    for (int i = 0; i < n; i++) total += lens[i];
    char *copy = malloc(total ? total : 1);
    /* More names than half the slots, or no memory: let Go filter them. */
    if (!copy || n > EVENT_SLOTS / 2) {
        free(copy);
        filter_all_events = 1;
        return;
    }
    memcpy(copy, names, total);
    memset(event_slots, 0, sizeof(event_slots));
    free(event_names);
    event_names = copy;
    for (int i = 0; i < n; i++) {
        uint32_t h = event_hash(copy, lens[i]) & (EVENT_SLOTS - 1);
        while (event_slots[h].name) h = (h + 1) & (EVENT_SLOTS - 1);
        event_slots[h].name = copy;
        event_slots[h].len = lens[i];
        copy += lens[i];
    }
    filter_all_events = all_events;
}

/* Call format: argv vector, replicate to replicas and AOF, errors as
 * replies, script mode (commands flagged noscript are refused), run as and
 * check the ACL of the attached user. */
#define CALL_FORMAT "v!ESC"

/* resolve looks an API entry up under prefix+name. */
static int resolve(const char *prefix, const char *name, void *target) {
    char full[128];
    size_t p = strlen(prefix), n = strlen(name);
    if (p + n + 1 > sizeof(full)) return VALKEYMODULE_ERR;
    memcpy(full, prefix, p);
    memcpy(full + p, name, n + 1);
    return GetApi(full, target);
}

#define REQUIRE(name)                                                                                    \
    if (resolve("ValkeyModule_", #name, (void *)&name) != VALKEYMODULE_OK) {                            \
        missing = #name;                                                                                 \
        goto fail;                                                                                       \
    }

/* init resolves every entry; on a server without one it logs which one and
 * what is required, and returns VALKEYMODULE_ERR. */
static int init(ValkeyModuleCtx *ctx) {
    const char *missing = NULL;
    GetApi = (int (*)(const char *, void *))(unsigned long)((void **)ctx)[0];
    if (resolve("ValkeyModule_", "Log", (void *)&Log) != VALKEYMODULE_OK) {
        /* Not a Valkey server (Redis names its API RedisModule_*). */
        if (resolve("RedisModule_", "Log", (void *)&Log) == VALKEYMODULE_OK)
            Log(ctx, "warning",
                "iungo requires Valkey 7.2 or later; this server has no ValkeyModule API. Load refused.");
        return VALKEYMODULE_ERR;
    }
    REQUIRE(AddPostNotificationJob);
    REQUIRE(SetModuleAttribs);
    REQUIRE(IsModuleNameBusy);
    REQUIRE(CreateCommand);
    REQUIRE(GetCommand);
    REQUIRE(CreateSubcommand);
    REQUIRE(SubscribeToKeyspaceEvents);
    REQUIRE(GetContextFlags);
    REQUIRE(GetSelectedDb);
    REQUIRE(ReplicateVerbatim);
    REQUIRE(StringPtrLen);
    REQUIRE(CreateString);
    REQUIRE(FreeString);
    REQUIRE(Call);
    REQUIRE(CallReplyType);
    REQUIRE(CallReplyInteger);
    REQUIRE(CallReplyStringPtr);
    REQUIRE(CallReplyProto);
    REQUIRE(CallReplyLength);
    REQUIRE(CallReplyArrayElement);
    REQUIRE(FreeCallReply);
    REQUIRE(ReplyWithError);
    REQUIRE(ReplyWithSimpleString);
    REQUIRE(ReplyWithLongLong);
    REQUIRE(ReplyWithStringBuffer);
    REQUIRE(ReplyWithArray);
    REQUIRE(ReplyWithMap);
    REQUIRE(RegisterNumericConfig);
    REQUIRE(LoadConfigs);
    REQUIRE(RegisterInfoFunc);
    REQUIRE(InfoAddSection);
    REQUIRE(InfoAddFieldLongLong);
    REQUIRE(InfoAddFieldCString);
    REQUIRE(GetServerVersion);
    REQUIRE(GetDetachedThreadSafeContext);
    REQUIRE(CreateDataType);
    REQUIRE(SaveStringBuffer);
    REQUIRE(LoadStringBuffer);
    REQUIRE(IsIOError);
    REQUIRE(Free);
    REQUIRE(SetModuleOptions);
    REQUIRE(SubscribeToServerEvent);
    REQUIRE(GetServerInfo);
    REQUIRE(ServerInfoGetFieldSigned);
    REQUIRE(FreeServerInfo);
    REQUIRE(CreateTimer);
    REQUIRE(Replicate);
    REQUIRE(RegisterStringConfig);
    REQUIRE(SetCommandACLCategories);
    REQUIRE(CreateModuleUser);
    REQUIRE(ACLCheckCommandPermissions);
    REQUIRE(SetModuleUserACL);
    REQUIRE(GetModuleUserFromUserName);
    REQUIRE(FreeModuleUser);
    REQUIRE(SetContextUser);
    REQUIRE(GetCommandKeysWithFlags);
    REQUIRE(BlockClient);
    REQUIRE(UnblockClient);
    REQUIRE(GetBlockedClientPrivateData);
    REQUIRE(GetThreadSafeContext);
    REQUIRE(FreeThreadSafeContext);
    REQUIRE(ThreadSafeContextLock);
    REQUIRE(ThreadSafeContextUnlock);
    REQUIRE(AvoidReplicaTraffic);
    REQUIRE(RegisterCommandFilter);
    REQUIRE(CommandFilterArgGet);
    REQUIRE(GetCurrentCommandName);
    REQUIRE(ServerInfoGetFieldC);
    REQUIRE(GetKeyNameFromModuleKey);
    REQUIRE(KeyType);
    REQUIRE(ValueLength);
    REQUIRE(StringDMA);
    REQUIRE(ListGet);
    REQUIRE(ScanCursorCreate);
    REQUIRE(ScanCursorDestroy);
    REQUIRE(ScanKey);
    if (resolve("ValkeyModule_", "AddACLCategory", (void *)&AddACLCategory) != VALKEYMODULE_OK) AddACLCategory = NULL;
    return VALKEYMODULE_OK;
fail:
    Log(ctx, "warning",
        "iungo requires Valkey 7.2 or later: this server lacks ValkeyModule_%s. Load refused.", missing);
    return VALKEYMODULE_ERR;
}

/* Triggers never fire on a replica, while loading, or for what the primary
 * sends (see module.OnEvent). */
#define NO_TRIGGER_FLAGS \
    (VALKEYMODULE_CTX_FLAGS_REPLICA | VALKEYMODULE_CTX_FLAGS_LOADING | VALKEYMODULE_CTX_FLAGS_REPLICATED)

static void run_job(ValkeyModuleCtx *ctx, void *pd);

/* ---- Slot migration is not a write ----
 * In cluster mode, keys that leave or enter a node through slot migration
 * raise ordinary events: legacy migration runs MIGRATE on the source (del
 * for every key that leaves) and RESTORE-ASKING on the target (restore and
 * new); a node that drops the keys of a slot it no longer owns (after an
 * atomic migration, or a lost slot) raises del outside any command. Atomic
 * imports (Valkey 9.0+) come from a client flagged as replicated, which the
 * context flags already exclude.
 *
 * From Valkey 8.1 the notification runs on the client executing the
 * command, so the command's name tells. On 8.0 it runs on a temporary
 * client: a command filter records the last command instead, and only the
 * events MIGRATE and RESTORE-ASKING raise are skipped. */
static int cluster_mode, names_known;
static enum { CMD_OTHER, CMD_MIGRATE, CMD_RESTORE_ASKING } last_command;
static long long migration_events;

static int migration_event(ValkeyModuleCtx *ctx, const char *event) {
    if (names_known) {
        const char *name = GetCurrentCommandName(ctx);
        if (!name) return strcmp(event, "del") == 0; /* a slot's keys dropped */
        return strcmp(name, "migrate") == 0 || strcmp(name, "restore-asking") == 0;
    }
    switch (last_command) {
    case CMD_MIGRATE: return strcmp(event, "del") == 0;
    case CMD_RESTORE_ASKING: return 1;
    default: return 0;
    }
}

static void record_command(ValkeyModuleCommandFilterCtx *fctx) {
    size_t n;
    const char *name = StringPtrLen(CommandFilterArgGet(fctx, 0), &n);
    last_command = n == 7 && strncasecmp(name, "migrate", 7) == 0          ? CMD_MIGRATE
                   : n == 14 && strncasecmp(name, "restore-asking", 14) == 0 ? CMD_RESTORE_ASKING
                                                                            : CMD_OTHER;
}

int iungo_watch_migrations(ValkeyModuleCtx *ctx, int command_names) {
    cluster_mode = 1;
    names_known = command_names;
    return names_known || RegisterCommandFilter(ctx, record_command, VALKEYMODULE_CMDFILTER_NOSELF) != NULL;
}

long long iungo_migration_events(void) {
    return migration_events;
}

static int on_event(ValkeyModuleCtx *ctx, int type, const char *event, ValkeyModuleString *key) {
    if (!(type & filter_classes) || !event_wanted(event)) return VALKEYMODULE_OK;
    size_t klen;
    const char *k = StringPtrLen(key, &klen);
    if (!key_may_match((const unsigned char *)k, klen)) return VALKEYMODULE_OK;
    int flags = GetContextFlags(ctx);
    if (flags & NO_TRIGGER_FLAGS) return VALKEYMODULE_OK;
    if (cluster_mode && migration_event(ctx, event)) {
        migration_events++;
        return VALKEYMODULE_OK;
    }
    uint64_t job = goOnEvent(ctx, flags, (char *)event, strlen(event), (char *)k, klen);
    if (job && AddPostNotificationJob(ctx, run_job, (void *)(uintptr_t)job, NULL) != VALKEYMODULE_OK)
        goJobRefused(job);
    return VALKEYMODULE_OK;
}

static ValkeyModuleUser *module_user, *named_user;
static void attach_module_user(ValkeyModuleCtx *ctx);

/* A run (a job's, a cron's) is as the module's own user unless Go attaches
 * the script user (iungo_attach_user); it ends with no user attached. */
void iungo_run_begin(ValkeyModuleCtx *ctx) {
    attach_module_user(ctx);
}

void iungo_run_end(ValkeyModuleCtx *ctx) {
    SetContextUser(ctx, NULL);
    if (named_user) {
        FreeModuleUser(named_user);
        named_user = NULL;
    }
}

static void run_job(ValkeyModuleCtx *ctx, void *pd) {
    iungo_run_begin(ctx);
    goRunJob(ctx, (uint64_t)(uintptr_t)pd, GetSelectedDb(ctx));
    iungo_run_end(ctx);
}

static int on_command(ValkeyModuleCtx *ctx, ValkeyModuleString **argv, int argc) {
    goCommand(ctx, argv, argc);
    return VALKEYMODULE_OK;
}

int ValkeyModule_OnLoad(ValkeyModuleCtx *ctx, ValkeyModuleString **argv, int argc) {
    if (init(ctx) != VALKEYMODULE_OK) return VALKEYMODULE_ERR;
    if (IsModuleNameBusy(IUNGO_MODULE_NAME)) {
        Log(ctx, "warning", "iungo is already loaded. Load refused.");
        return VALKEYMODULE_ERR;
    }
    SetModuleAttribs(ctx, IUNGO_MODULE_NAME, IUNGO_MODULE_VERSION, VALKEYMODULE_APIVER_1);
    log_ctx = GetDetachedThreadSafeContext(ctx);
    if (CreateCommand(ctx, "iungo", NULL, "", 0, 0, 0) != VALKEYMODULE_OK) {
        Log(ctx, "warning", "iungo: cannot create the IUNGO command. Load refused.");
        return VALKEYMODULE_ERR;
    }
    return goOnLoad(ctx, argv, argc) ? VALKEYMODULE_OK : VALKEYMODULE_ERR;
}

/* Redis loads RedisModule_OnLoad: answer with a clear refusal there too. */
int RedisModule_OnLoad(ValkeyModuleCtx *ctx, ValkeyModuleString **argv, int argc) {
    return ValkeyModule_OnLoad(ctx, argv, argc);
}

/* A Go c-shared library cannot leave the process (dlclose does nothing). */
int ValkeyModule_OnUnload(ValkeyModuleCtx *ctx) {
    Log(ctx, "warning",
        "iungo cannot be unloaded: the Go runtime inside it cannot leave the process. "
        "Restart the server without loading iungo instead.");
    return VALKEYMODULE_ERR;
}

int iungo_ctx_flags(ValkeyModuleCtx *ctx) {
    return GetContextFlags(ctx);
}

int iungo_selected_db(ValkeyModuleCtx *ctx) {
    return GetSelectedDb(ctx);
}

void iungo_replicate_verbatim(ValkeyModuleCtx *ctx) {
    ReplicateVerbatim(ctx);
}

/* ---- Reply serialisation (the format is documented in ctx.go). ---- */

typedef struct {
    char *p;
    size_t len, cap;
    int failed;
} buf_t;

static void put(buf_t *b, const void *data, size_t n) {
    if (b->failed) return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->len + n) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void put_tag(buf_t *b, char tag, uint64_t n) {
    put(b, &tag, 1);
    put(b, &n, sizeof(n));
}

static void put_bytes(buf_t *b, char tag, const char *s, size_t n) {
    put_tag(b, tag, n);
    put(b, s, n);
}

static void serialise(buf_t *b, ValkeyModuleCallReply *r) {
    size_t len;
    const char *s;
    switch (CallReplyType(r)) {
    case VALKEYMODULE_REPLY_STRING: {
        /* Without the X call flag (absent before 8.1) status and bulk
         * replies share a type; the raw protocol tells them apart. */
        size_t plen;
        const char *proto = CallReplyProto(r, &plen);
        s = CallReplyStringPtr(r, &len);
        put_bytes(b, plen > 0 && proto[0] == '+' ? '+' : '$', s, len);
        break;
    }
    case VALKEYMODULE_REPLY_ERROR:
        s = CallReplyStringPtr(r, &len);
        put_bytes(b, '-', s, len);
        break;
    case VALKEYMODULE_REPLY_INTEGER:
        put_tag(b, ':', (uint64_t)CallReplyInteger(r));
        break;
    case VALKEYMODULE_REPLY_ARRAY: {
        size_t n = CallReplyLength(r);
        put_tag(b, '*', n);
        for (size_t i = 0; i < n; i++) serialise(b, CallReplyArrayElement(r, i));
        break;
    }
    default: /* null, null array; RESP3 types cannot come from a RESP2 call */
        put_tag(b, '_', 0);
    }
}

/* How the server's own Lua words the errors of calls that never ran: set
 * from Go at load, by server version (module.FeaturesOf). */
static char *err_not_allowed, *err_wrong_arity, *err_unknown;

void iungo_set_script_errors(const char *not_allowed, const char *wrong_arity, const char *unknown) {
    err_not_allowed = strdup(not_allowed);
    err_wrong_arity = strdup(wrong_arity);
    err_unknown = strdup(unknown);
}

static const char *script_wording(const char *set, const char *fallback) {
    return set ? set : fallback;
}

/* script_error returns the message the server's own Lua shows for errors
 * it words differently from the command's reply, or NULL. */
static const char *script_error(ValkeyModuleCallReply *r, int err) {
    size_t len;
    const char *msg = CallReplyStringPtr(r, &len);
#define STARTS(prefix) (len >= sizeof(prefix) - 1 && memcmp(msg, prefix, sizeof(prefix) - 1) == 0)
    if (err == ESPIPE && STARTS("ERR command "))
        return script_wording(err_not_allowed, "ERR This Valkey command is not allowed from script");
    if (err == EINVAL && STARTS("ERR wrong number of arguments for "))
        return script_wording(err_wrong_arity, "ERR Wrong number of args calling command from script");
    if (err == ENOENT && STARTS("ERR unknown command '"))
        return script_wording(err_unknown, "ERR Unknown command called from script");
#undef STARTS
    return NULL;
}

static const char *errno_message(int err) {
    switch (err) {
    case EBADF: return "ERR internal error: bad call format";
    case EINVAL: return script_wording(err_wrong_arity, "ERR Wrong number of args calling command from script");
    case ENOENT: return script_wording(err_unknown, "ERR Unknown command called from script");
    case EPERM: return "ERR key lives in another cluster slot than this node serves";
    case EROFS: return "ERR cluster is read-only";
    case ENETDOWN: return "ERR cluster is down";
    case ENOTSUP: return "ERR no ACL user attached to the trigger context";
    case EACCES: return "NOPERM ACL denied the command";
    case ENOSPC: return "OOM command not allowed when used memory > 'maxmemory'";
    case ESPIPE: return script_wording(err_not_allowed, "ERR This Valkey command is not allowed from script");
    default: return "ERR command failed";
    }
}

/* new_argv makes server strings of a command packed as for iungo_call, in
 * small when it fits; free_argv frees them. */
static ValkeyModuleString **new_argv(ValkeyModuleCtx *ctx, const char *buf, const size_t *lens, int argc,
                                     ValkeyModuleString **small) {
    ValkeyModuleString **argv = argc > 16 ? malloc(sizeof(*argv) * (size_t)argc) : small;
    if (!argv) return NULL;
    const char *p = buf;
    for (int i = 0; i < argc; i++) {
        argv[i] = CreateString(ctx, p, lens[i]);
        p += lens[i];
    }
    return argv;
}

static void free_argv(ValkeyModuleCtx *ctx, ValkeyModuleString **argv, int argc, ValkeyModuleString **small) {
    for (int i = 0; i < argc; i++) FreeString(ctx, argv[i]);
    if (argv != small) free(argv);
}

/* The reply buffer of iungo_call, kept between calls: Go reads each reply
 * before it makes the next call. Past 1 MiB it is freed after the next. */
static buf_t reply_buf;
#define REPLY_BUF_KEEP (1 << 20)

char *iungo_call(ValkeyModuleCtx *ctx, const char *buf, const size_t *lens, int argc, size_t *outlen) {
    if (reply_buf.cap > REPLY_BUF_KEEP) {
        free(reply_buf.p);
        reply_buf = (buf_t){0};
    }
    buf_t out = reply_buf;
    out.len = 0;
    out.failed = 0;
    char name[64];
    if (argc < 1 || lens[0] >= sizeof(name) || memchr(buf, 0, lens[0])) {
        const char *msg = errno_message(ENOENT);
        put_bytes(&out, '-', msg, strlen(msg));
        reply_buf = out;
        *outlen = out.len;
        return out.p;
    }
    memcpy(name, buf, lens[0]);
    name[lens[0]] = 0;

    ValkeyModuleString *small[16];
    int nargs = argc - 1;
    ValkeyModuleString **args = new_argv(ctx, buf + lens[0], lens + 1, nargs, small);
    if (!args) {
        const char *msg = "ERR out of memory building the call";
        put_bytes(&out, '-', msg, strlen(msg));
        reply_buf = out;
        *outlen = out.len;
        return out.p;
    }
    errno = 0;
    ValkeyModuleCallReply *r = nargs > 0 ? Call(ctx, name, CALL_FORMAT, args, (size_t)nargs)
                                         : Call(ctx, name, CALL_FORMAT + 1); /* no vector */
    int err = errno;
    free_argv(ctx, args, nargs, small);

    const char *rewrite = r && CallReplyType(r) == VALKEYMODULE_REPLY_ERROR ? script_error(r, err) : NULL;
    size_t elen;
    const char *emsg = r && CallReplyType(r) == VALKEYMODULE_REPLY_ERROR ? CallReplyStringPtr(r, &elen) : NULL;
    if (rewrite) {
        put_bytes(&out, '-', rewrite, strlen(rewrite));
        FreeCallReply(r);
    } else if (emsg && err == EACCES && elen > 7 && memcmp(emsg, "NOPERM ", 7) == 0) {
        /* As Valkey's Lua words an ACL denial. */
        static const char prefix[] = "ERR ACL failure in script: ";
        put_tag(&out, '-', sizeof(prefix) - 1 + elen - 7);
        put(&out, prefix, sizeof(prefix) - 1);
        put(&out, emsg + 7, elen - 7);
        FreeCallReply(r);
    } else if (r) {
        serialise(&out, r);
        FreeCallReply(r);
    } else {
        const char *msg = errno_message(err);
        put_bytes(&out, '-', msg, strlen(msg));
    }
    if (out.failed) {
        free(out.p);
        out = (buf_t){0};
        const char *msg = "ERR out of memory reading the reply";
        put_bytes(&out, '-', msg, strlen(msg));
    }
    reply_buf = out;
    *outlen = out.len;
    return out.p;
}

void iungo_free(void *p) {
    free(p);
}

const char *iungo_arg(ValkeyModuleString **argv, int i, size_t *len) {
    return StringPtrLen(argv[i], len);
}

/* cstring copies a (pointer, length) string into a NUL-terminated one,
 * on the stack when small. Embedded NULs end it early. */
#define WITH_CSTRING(var, s, len, body)                                                                  \
    do {                                                                                                 \
        char stack_[256];                                                                                \
        char *var = (len) < sizeof(stack_) ? stack_ : malloc((len) + 1);                                 \
        if (var) {                                                                                       \
            if (len) memcpy(var, (s), (len));                                                            \
            var[len] = 0;                                                                                \
            body;                                                                                        \
            if (var != stack_) free(var);                                                                \
        }                                                                                                \
    } while (0)

void iungo_reply_error(ValkeyModuleCtx *ctx, const char *msg, size_t len) {
    WITH_CSTRING(m, msg, len, ReplyWithError(ctx, m));
}

void iungo_reply_status(ValkeyModuleCtx *ctx, const char *msg, size_t len) {
    WITH_CSTRING(m, msg, len, ReplyWithSimpleString(ctx, m));
}

void iungo_reply_int(ValkeyModuleCtx *ctx, long long n) {
    ReplyWithLongLong(ctx, n);
}

void iungo_reply_string(ValkeyModuleCtx *ctx, const char *s, size_t len) {
    ReplyWithStringBuffer(ctx, s ? s : "", len);
}

void iungo_reply_array(ValkeyModuleCtx *ctx, long n) {
    ReplyWithArray(ctx, n);
}

void iungo_reply_map(ValkeyModuleCtx *ctx, long n) {
    ReplyWithMap(ctx, n);
}

void iungo_log(const char *level, const char *msg, size_t len) {
    WITH_CSTRING(m, msg, len, Log(log_ctx, level, "%s", m));
}

int iungo_add_acl_category(ValkeyModuleCtx *ctx) {
    return AddACLCategory && AddACLCategory(ctx, "iungo") == VALKEYMODULE_OK;
}

int iungo_create_subcommand(ValkeyModuleCtx *ctx, const char *name, const char *flags, const char *categories) {
    ValkeyModuleCommand *parent = GetCommand(ctx, "iungo");
    if (!parent || CreateSubcommand(parent, name, on_command, flags, 0, 0, 0) != VALKEYMODULE_OK) return 0;
    if (!*categories) return 1;
    char full[64];
    snprintf(full, sizeof(full), "iungo|%s", name);
    ValkeyModuleCommand *sub = GetCommand(ctx, full);
    return sub && SetCommandACLCategories(sub, categories) == VALKEYMODULE_OK;
}

static long long config_get_numeric(const char *name, void *privdata) {
    (void)name;
    return goConfigGetNumeric((int)(intptr_t)privdata);
}

static int config_set_numeric(const char *name, long long val, void *privdata, ValkeyModuleString **err) {
    (void)name;
    char msg[256];
    if (goConfigSetNumeric((int)(intptr_t)privdata, val, msg, sizeof(msg))) return VALKEYMODULE_OK;
    *err = CreateString(NULL, msg, strlen(msg));
    return VALKEYMODULE_ERR;
}

int iungo_register_numeric(ValkeyModuleCtx *ctx, const char *name, long long def, long long min, long long max,
                           int idx) {
    return RegisterNumericConfig(ctx, name, def, VALKEYMODULE_CONFIG_DEFAULT, min, max, config_get_numeric,
                                 config_set_numeric, NULL, (void *)(intptr_t)idx) == VALKEYMODULE_OK;
}

/* String configs: the server keeps no copy of what a get callback returns,
 * so each option's current value lives here until the next get. */
static ValkeyModuleString *string_values[16];

static ValkeyModuleString *config_get_string(const char *name, void *privdata) {
    (void)name;
    int idx = (int)(intptr_t)privdata;
    char buf[1024];
    size_t n = goConfigGetString(idx, buf, sizeof(buf));
    if (string_values[idx]) FreeString(NULL, string_values[idx]);
    string_values[idx] = CreateString(NULL, buf, n < sizeof(buf) ? n : sizeof(buf));
    return string_values[idx];
}

static int config_set_string(const char *name, ValkeyModuleString *val, void *privdata, ValkeyModuleString **err) {
    (void)name;
    char msg[256];
    size_t len;
    const char *v = StringPtrLen(val, &len);
    if (goConfigSetString((int)(intptr_t)privdata, (char *)v, len, msg, sizeof(msg))) return VALKEYMODULE_OK;
    *err = CreateString(NULL, msg, strlen(msg));
    return VALKEYMODULE_ERR;
}

int iungo_register_string(ValkeyModuleCtx *ctx, const char *name, const char *def, int idx, int sensitive) {
    if (idx < 0 || idx >= (int)(sizeof(string_values) / sizeof(string_values[0]))) return 0;
    unsigned int flags = sensitive ? VALKEYMODULE_CONFIG_SENSITIVE : VALKEYMODULE_CONFIG_DEFAULT;
    return RegisterStringConfig(ctx, name, def, flags, config_get_string, config_set_string, NULL,
                                (void *)(intptr_t)idx) == VALKEYMODULE_OK;
}

int iungo_load_configs(ValkeyModuleCtx *ctx) {
    return LoadConfigs(ctx) == VALKEYMODULE_OK;
}

static void info(ValkeyModuleInfoCtx *ctx, int for_crash_report) {
    goInfo(ctx, for_crash_report);
}

int iungo_register_info(ValkeyModuleCtx *ctx) {
    return RegisterInfoFunc(ctx, info) == VALKEYMODULE_OK;
}

void iungo_info_section(ValkeyModuleInfoCtx *ctx) {
    InfoAddSection(ctx, NULL);
}

void iungo_info_int(ValkeyModuleInfoCtx *ctx, const char *name, size_t namelen, long long v) {
    WITH_CSTRING(n, name, namelen, InfoAddFieldLongLong(ctx, n, v));
}

void iungo_info_string(ValkeyModuleInfoCtx *ctx, const char *name, size_t namelen, const char *v, size_t len) {
    WITH_CSTRING(n, name, namelen, WITH_CSTRING(val, v, len, InfoAddFieldCString(ctx, n, val)));
}

int iungo_server_version(void) {
    return GetServerVersion();
}

/* ---- Persistence ---- */

/* The configuration as a list of encoded records (see snapshot.go), kept in
 * C so that aux_save2 can frame it in a forked child: Go code must not run
 * there, since only the forking thread survives a fork. A store is built
 * whole, on any thread, with one allocation for its nodes and one for their
 * bytes; later changes put and delete single records. */
#define RECORD_MAGIC 0x69756e67u

typedef struct record {
    uint32_t magic;
    int owned; /* allocated on its own, not part of a built store */
    struct record *prev, *next;
    size_t len;
    const char *data;
} record;

typedef struct store {
    record *head, *tail;
    record *nodes; /* the records it was built with */
    char *arena;   /* their bytes */
} store;

static store empty_store, *current = &empty_store;
static char *store_header;
static size_t store_header_len;
static int store_header_default = 1;

static void store_unlink(store *st, record *r) {
    if (r->prev) r->prev->next = r->next; else st->head = r->next;
    if (r->next) r->next->prev = r->prev; else st->tail = r->prev;
}

static void store_free(store *st) {
    for (record *r = st->head, *next; r; r = next) {
        next = r->next;
        if (r->owned) {
            r->magic = 0;
            free(r);
        }
    }
    free(st->nodes);
    free(st->arena);
    if (st != &empty_store) free(st);
}

uint64_t iungo_store_put(uint64_t handle, const char *rec, size_t len) {
    record *r = malloc(sizeof(record) + len);
    if (!r) return handle;
    char *data = (char *)(r + 1);
    memcpy(data, rec, len);
    *r = (record){.magic = RECORD_MAGIC, .owned = 1, .len = len, .data = data};
    record *old = (record *)(uintptr_t)handle;
    if (old && old->magic == RECORD_MAGIC) {
        /* Replace in place: a trigger keeps its registration order. */
        r->prev = old->prev;
        r->next = old->next;
        if (r->prev) r->prev->next = r; else current->head = r;
        if (r->next) r->next->prev = r; else current->tail = r;
        old->magic = 0;
        if (old->owned) free(old);
    } else {
        r->prev = current->tail;
        if (current->tail) current->tail->next = r; else current->head = r;
        current->tail = r;
    }
    return (uint64_t)(uintptr_t)r;
}

void iungo_store_delete(uint64_t handle) {
    record *r = (record *)(uintptr_t)handle;
    if (!r || r->magic != RECORD_MAGIC) return;
    store_unlink(current, r);
    r->magic = 0;
    if (r->owned) free(r);
}

uint64_t iungo_store_build(const char *buf, const size_t *ends, size_t n, uint64_t *handles) {
    store *st = calloc(1, sizeof(store));
    if (!st) return 0;
    size_t total = n ? ends[n - 1] : 0;
    st->arena = malloc(total ? total : 1);
    st->nodes = calloc(n ? n : 1, sizeof(record));
    if (!st->arena || !st->nodes) {
        store_free(st);
        return 0;
    }
    memcpy(st->arena, buf, total);
    for (size_t i = 0; i < n; i++) {
        size_t start = i ? ends[i - 1] : 0;
        record *r = &st->nodes[i];
        *r = (record){.magic = RECORD_MAGIC, .len = ends[i] - start, .data = st->arena + start};
        r->prev = i ? &st->nodes[i - 1] : NULL;
        r->next = i + 1 < n ? &st->nodes[i + 1] : NULL;
        handles[i] = (uint64_t)(uintptr_t)r;
    }
    if (n) {
        st->head = &st->nodes[0];
        st->tail = &st->nodes[n - 1];
    }
    return (uint64_t)(uintptr_t)st;
}

void iungo_store_swap(uint64_t image) {
    store *st = (store *)(uintptr_t)image, *old = current;
    if (!st) return;
    current = st;
    store_free(old);
}

void iungo_store_discard(uint64_t image) {
    store *st = (store *)(uintptr_t)image;
    if (st && st != current) store_free(st);
}

void iungo_store_set_header(const char *rec, size_t len, int is_default) {
    char *h = malloc(len ? len : 1);
    if (!h) return;
    memcpy(h, rec, len);
    free(store_header);
    store_header = h;
    store_header_len = len;
    store_header_default = is_default;
}

/* CRC-32 (IEEE), as Go's hash/crc32.ChecksumIEEE. */
static uint32_t crc_table[256];

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

static uint32_t crc32_ieee(const char *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) c = crc_table[(c ^ (uint8_t)p[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

#define SNAPSHOT_MAGIC "IUNGOCF1"
#define SNAPSHOT_ENCVER 1

/* aux_save2 writes nothing for a default configuration, so that such an RDB
 * loads without the module; loading resets the configuration first. */
static void aux_save(ValkeyModuleIO *io, int when) {
    (void)when;
    if (!current->head && store_header_default) return;
    size_t total = sizeof(SNAPSHOT_MAGIC) - 1 + store_header_len + 4;
    for (record *r = current->head; r; r = r->next) total += r->len;
    char *buf = malloc(total), *p = buf;
    if (!buf) {
        Log(log_ctx, "warning", "iungo: out of memory saving the configuration; saving an empty one");
        return;
    }
    memcpy(p, SNAPSHOT_MAGIC, sizeof(SNAPSHOT_MAGIC) - 1);
    p += sizeof(SNAPSHOT_MAGIC) - 1;
    memcpy(p, store_header, store_header_len);
    p += store_header_len;
    for (record *r = current->head; r; r = r->next) {
        memcpy(p, r->data, r->len);
        p += r->len;
    }
    uint32_t sum = crc32_ieee(buf, (size_t)(p - buf));
    for (int i = 0; i < 4; i++) *p++ = (char)(sum >> (8 * i)); /* little endian */
    SaveStringBuffer(io, buf, total);
    free(buf);
}

static int aux_load(ValkeyModuleIO *io, int encver, int when) {
    (void)when;
    if (encver > SNAPSHOT_ENCVER) {
        Log(log_ctx, "warning",
            "iungo: the RDB holds an iungo configuration of encoding %d; this iungo reads up to %d. Upgrade iungo.",
            encver, SNAPSHOT_ENCVER);
        return VALKEYMODULE_ERR;
    }
    size_t len = 0;
    char *buf = LoadStringBuffer(io, &len);
    if (IsIOError(io) || !buf) {
        Log(log_ctx, "warning", "iungo: the iungo configuration in the RDB is truncated; nothing was applied.");
        if (buf) Free(buf);
        return VALKEYMODULE_ERR;
    }
    int ok = goAuxLoad(buf, len);
    Free(buf);
    return ok ? VALKEYMODULE_OK : VALKEYMODULE_ERR;
}

static void on_loading(ValkeyModuleCtx *ctx, ValkeyModuleEvent eid, uint64_t subevent, void *data) {
    (void)ctx, (void)eid, (void)data;
    if (subevent == VALKEYMODULE_SUBEVENT_LOADING_RDB_START || subevent == VALKEYMODULE_SUBEVENT_LOADING_AOF_START ||
        subevent == VALKEYMODULE_SUBEVENT_LOADING_REPL_START)
        goLoadingStarted();
}

static void on_fork(ValkeyModuleCtx *ctx, ValkeyModuleEvent eid, uint64_t subevent, void *data) {
    (void)eid, (void)data;
    if (subevent == VALKEYMODULE_SUBEVENT_FORK_CHILD_BORN) goForkBorn(ctx);
}

static void on_role_changed(ValkeyModuleCtx *ctx, ValkeyModuleEvent eid, uint64_t subevent, void *data) {
    (void)ctx, (void)eid, (void)subevent, (void)data;
    goRoleChanged();
}

int iungo_watch_role(ValkeyModuleCtx *ctx) {
    ValkeyModuleEvent role = {VALKEYMODULE_EVENT_REPLICATION_ROLE_CHANGED, 1};
    return SubscribeToServerEvent(ctx, role, on_role_changed) == VALKEYMODULE_OK;
}

size_t iungo_primary_address(ValkeyModuleCtx *ctx, char *buf, size_t size) {
    ValkeyModuleServerInfoData *info = GetServerInfo(ctx, "replication");
    if (!info) return 0;
    const char *host = ServerInfoGetFieldC(info, "master_host");
    const char *port = ServerInfoGetFieldC(info, "master_port");
    int n = host && port ? snprintf(buf, size, "%s:%s", host, port) : 0;
    FreeServerInfo(ctx, info);
    return n > 0 && (size_t)n < size ? (size_t)n : 0;
}

int iungo_command_readonly(ValkeyModuleCtx *ctx, const char *name, size_t len) {
    ValkeyModuleCallReply *r = Call(ctx, "COMMAND", "cb", "INFO", name, len);
    int readonly = 0;
    if (r && CallReplyType(r) == VALKEYMODULE_REPLY_ARRAY && CallReplyLength(r) == 1) {
        ValkeyModuleCallReply *info = CallReplyArrayElement(r, 0);
        if (CallReplyType(info) == VALKEYMODULE_REPLY_ARRAY && CallReplyLength(info) > 2) {
            ValkeyModuleCallReply *flags = CallReplyArrayElement(info, 2);
            for (size_t i = 0; CallReplyType(flags) == VALKEYMODULE_REPLY_ARRAY && i < CallReplyLength(flags); i++) {
                size_t n;
                const char *f = CallReplyStringPtr(CallReplyArrayElement(flags, i), &n);
                if (f && n == 8 && memcmp(f, "readonly", 8) == 0) readonly = 1;
            }
        }
    }
    if (r) FreeCallReply(r);
    return readonly;
}

size_t iungo_cluster_myid(ValkeyModuleCtx *ctx, char *buf, size_t size) {
    ValkeyModuleCallReply *r = Call(ctx, "CLUSTER", "c", "MYID");
    size_t n = 0;
    if (r && CallReplyType(r) == VALKEYMODULE_REPLY_STRING) {
        const char *id = CallReplyStringPtr(r, &n);
        if (n >= size) n = 0;
        else memcpy(buf, id, n);
    }
    if (r) FreeCallReply(r);
    return n;
}

int iungo_aof_rewrite_in_progress(ValkeyModuleCtx *ctx) {
    ValkeyModuleServerInfoData *info = GetServerInfo(ctx, "persistence");
    if (!info) return 0;
    int err = 0;
    long long v = ServerInfoGetFieldSigned(info, "aof_rewrite_in_progress", &err);
    FreeServerInfo(ctx, info);
    return !err && v == 1;
}

void iungo_replicate_restore(ValkeyModuleCtx *ctx, const char *snap, size_t len, int aof_only) {
    Replicate(ctx, "iungo", aof_only ? "cbR" : "cb", "restore", snap, len);
}

void iungo_replicate(ValkeyModuleCtx *ctx, const char *buf, const size_t *lens, int argc) {
    if (argc < 1 || lens[0] >= 64) return;
    char name[64];
    memcpy(name, buf, lens[0]);
    name[lens[0]] = 0;
    int nargs = argc - 1;
    ValkeyModuleString **args = malloc(sizeof(*args) * (size_t)(nargs ? nargs : 1));
    if (!args) return;
    const char *p = buf + lens[0];
    for (int i = 0; i < nargs; i++) {
        args[i] = CreateString(ctx, p, lens[i + 1]);
        p += lens[i + 1];
    }
    Replicate(ctx, name, "v", args, (size_t)nargs);
    for (int i = 0; i < nargs; i++) FreeString(ctx, args[i]);
    free(args);
}

int iungo_writes_paused(void) {
    return AvoidReplicaTraffic();
}

/* Asks the server whether it would refuse a write that may grow memory
 * now, by the rule it applies to scripts (its out-of-memory state at the
 * start of the command): a SET called with M (respect maxmemory) and W (no
 * writes) runs nothing, and fails with OOM first when memory is the
 * reason. */
int iungo_out_of_memory(ValkeyModuleCtx *ctx) {
    ValkeyModuleCallReply *r = Call(ctx, "SET", "ccMWE", "iungo:oom-probe", "x");
    if (!r) return 0;
    int oom = 0;
    if (CallReplyType(r) == VALKEYMODULE_REPLY_ERROR) {
        size_t len;
        const char *msg = CallReplyStringPtr(r, &len);
        oom = len >= 3 && memcmp(msg, "OOM", 3) == 0;
    }
    FreeCallReply(r);
    return oom;
}

/* ---- The value a key had ----
 * The key event fires while a deleted, expired, evicted or overwritten
 * key's value is still readable, before the keyspace notification. For a
 * key some trigger that wants old values may match (goOldValueWanted), the
 * value is read as the matching read command would answer, in the reply
 * format of iungo_call, and handed to Go (goOldValue), which keeps it for
 * the notification that follows. */
typedef struct {
    buf_t body;
    size_t n, max;
    int over;
} scan_t;

static void put_string(scan_t *st, ValkeyModuleString *s) {
    size_t len;
    const char *p = StringPtrLen(s, &len);
    if (st->body.len + len > st->max) st->over = 1;
    if (st->over) return;
    put_bytes(&st->body, '$', p, len);
    st->n++;
}

static void scan_entry(ValkeyModuleKey *key, ValkeyModuleString *field, ValkeyModuleString *value, void *pd) {
    (void)key;
    scan_t *st = pd;
    put_string(st, field);
    if (value) put_string(st, value);
}

/* read_value returns the key's type (1 string ... 5 zset) or 0 for one not
 * read (stream, module type); st->over says it passed max bytes. */
static int read_value(ValkeyModuleCtx *ctx, ValkeyModuleKey *key, scan_t *st) {
    int type = KeyType(key);
    switch (type) {
    case VALKEYMODULE_KEYTYPE_STRING: {
        size_t len;
        const char *p = StringDMA(key, &len, VALKEYMODULE_READ);
        if (len > st->max) {
            st->over = 1;
        } else {
            put_bytes(&st->body, '$', p ? p : "", p ? len : 0);
        }
        return type;
    }
    case VALKEYMODULE_KEYTYPE_LIST: {
        size_t n = ValueLength(key);
        for (size_t i = 0; i < n && !st->over; i++) {
            ValkeyModuleString *el = ListGet(key, (long)i);
            if (!el) break;
            put_string(st, el);
            FreeString(ctx, el);
        }
        return type;
    }
    case VALKEYMODULE_KEYTYPE_HASH:
    case VALKEYMODULE_KEYTYPE_SET:
    case VALKEYMODULE_KEYTYPE_ZSET: {
        ValkeyModuleScanCursor *c = ScanCursorCreate();
        while (!st->over && ScanKey(key, c, scan_entry, st)) {
        }
        ScanCursorDestroy(c);
        return type;
    }
    }
    return 0;
}

static void on_key_unlink(ValkeyModuleCtx *ctx, ValkeyModuleEvent eid, uint64_t subevent, void *data) {
    (void)eid;
    ValkeyModuleKey *key = ((ValkeyModuleKeyInfoV1 *)data)->key;
    size_t klen;
    const char *k = StringPtrLen(GetKeyNameFromModuleKey(key), &klen);
    if (!key_may_match((const unsigned char *)k, klen)) return;
    if (GetContextFlags(ctx) & NO_TRIGGER_FLAGS) return;
    long long max = goOldValueWanted((char *)k, klen, (int)subevent);
    if (max <= 0) return;
    scan_t st = {.max = (size_t)max};
    int type = read_value(ctx, key, &st);
    buf_t out = {0};
    if (type == VALKEYMODULE_KEYTYPE_STRING && !st.over) {
        out = st.body;
        st.body = (buf_t){0};
    } else if (type && !st.over) {
        put_tag(&out, '*', st.n);
        put(&out, st.body.p, st.body.len);
    }
    int failed = out.failed || st.body.failed;
    goOldValue((char *)k, klen, out.p, out.len, type, st.over || failed, (int)subevent);
    free(out.p);
    free(st.body.p);
}

int iungo_watch_key_values(ValkeyModuleCtx *ctx) {
    ValkeyModuleEvent ev = {VALKEYMODULE_EVENT_KEY, 1};
    return SubscribeToServerEvent(ctx, ev, on_key_unlink) == VALKEYMODULE_OK;
}

static void on_shutdown(ValkeyModuleCtx *ctx, ValkeyModuleEvent eid, uint64_t subevent, void *data) {
    (void)ctx, (void)eid, (void)subevent, (void)data;
    goShutdown();
}

int iungo_register_persistence(ValkeyModuleCtx *ctx, int atomic_slot_migration) {
    crc_init();
    /* Valkey 9.0+ refuses atomic slot migration (CLUSTER MIGRATESLOTS)
     * while a module that does not handle it is loaded: iungo does. */
    int options = VALKEYMODULE_OPTIONS_HANDLE_IO_ERRORS;
    if (atomic_slot_migration) options |= VALKEYMODULE_OPTIONS_HANDLE_ATOMIC_SLOT_MIGRATION;
    SetModuleOptions(ctx, options);
    ValkeyModuleTypeMethods tm = {0};
    tm.version = VALKEYMODULE_TYPE_METHOD_VERSION;
    tm.aux_load = aux_load;
    tm.aux_save2 = aux_save;
    tm.aux_save_triggers = VALKEYMODULE_AUX_BEFORE_RDB;
    if (!CreateDataType(ctx, "iungo-cfg", SNAPSHOT_ENCVER, &tm)) return 0;
    /* A module with a data type is never unloaded, not even at shutdown
     * (9.x tries and logs why not): the shutdown event is its last word. */
    ValkeyModuleEvent loading = {VALKEYMODULE_EVENT_LOADING, 1}, fork = {VALKEYMODULE_EVENT_FORK_CHILD, 1},
                      shutdown = {VALKEYMODULE_EVENT_SHUTDOWN, 1};
    return SubscribeToServerEvent(ctx, loading, on_loading) == VALKEYMODULE_OK &&
           SubscribeToServerEvent(ctx, fork, on_fork) == VALKEYMODULE_OK &&
           SubscribeToServerEvent(ctx, shutdown, on_shutdown) == VALKEYMODULE_OK;
}

static void after_startup(ValkeyModuleCtx *ctx, void *data) {
    (void)data;
    goAfterStartup(ctx);
}

void iungo_after_startup(ValkeyModuleCtx *ctx) {
    CreateTimer(ctx, 1, after_startup, NULL);
}

/* ---- Script user ---- */

/* The module's own user, with full access: the default script user. Calls
 * run with the C flag need a user attached. named_user is the script user
 * attached for the job in progress, freed when it ends. */
static void attach_module_user(ValkeyModuleCtx *ctx) {
    if (!module_user) {
        module_user = CreateModuleUser("iungo");
        SetModuleUserACL(module_user, "on");
        SetModuleUserACL(module_user, "allkeys");
        SetModuleUserACL(module_user, "allchannels");
        SetModuleUserACL(module_user, "allcommands");
    }
    SetContextUser(ctx, module_user);
}

int iungo_attach_user(ValkeyModuleCtx *ctx, const char *name, size_t len) {
    ValkeyModuleString *s = CreateString(NULL, name, len);
    ValkeyModuleUser *u = GetModuleUserFromUserName(s);
    FreeString(NULL, s);
    if (!u) return 0;
    if (named_user) FreeModuleUser(named_user);
    named_user = u;
    SetContextUser(ctx, named_user);
    return 1;
}

int iungo_acl_check(ValkeyModuleCtx *ctx, const char *buf, const size_t *lens, int argc) {
    ValkeyModuleUser *user = named_user ? named_user : module_user;
    ValkeyModuleString *small[16], **argv;
    if (!user || argc < 1 || !(argv = new_argv(ctx, buf, lens, argc, small))) return -1;
    errno = 0;
    int ok = ACLCheckCommandPermissions(user, argv, argc) == VALKEYMODULE_OK;
    int err = errno;
    free_argv(ctx, argv, argc, small);
    return ok ? 1 : err == ENOENT ? -1 : 0;
}

int iungo_command_keys(ValkeyModuleCtx *ctx, const char *buf, const size_t *lens, int argc, int *pos, int *flags,
                       int max) {
    ValkeyModuleString *small[16], **argv = new_argv(ctx, buf, lens, argc, small);
    if (!argv) return -1;
    int n = 0, *kflags = NULL;
    errno = 0;
    int *keys = GetCommandKeysWithFlags(ctx, argv, argc, &n, &kflags);
    int err = errno;
    free_argv(ctx, argv, argc, small);
    if (!keys) return err ? -1 : 0;
    if (n > max) n = max;
    for (int i = 0; i < n; i++) {
        pos[i] = keys[i];
        flags[i] = kflags[i];
    }
    Free(keys);
    Free(kflags);
    return n;
}

/* ---- Signals ---- */

static const int go_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL};
static struct sigaction go_handlers[sizeof(go_signals) / sizeof(go_signals[0])];

static void reinstall_go_handlers(void) {
    for (size_t i = 0; i < sizeof(go_signals) / sizeof(go_signals[0]); i++) {
        struct sigaction cur;
        if (sigaction(go_signals[i], NULL, &cur) == 0 && cur.sa_sigaction != go_handlers[i].sa_sigaction)
            sigaction(go_signals[i], &go_handlers[i], NULL);
    }
}

static void on_config_change(ValkeyModuleCtx *ctx, ValkeyModuleEvent eid, uint64_t subevent, void *data) {
    (void)ctx, (void)eid, (void)subevent, (void)data;
    reinstall_go_handlers();
}

int iungo_keep_go_signal_handlers(ValkeyModuleCtx *ctx) {
    for (size_t i = 0; i < sizeof(go_signals) / sizeof(go_signals[0]); i++)
        if (sigaction(go_signals[i], NULL, &go_handlers[i]) != 0) return 0;
    ValkeyModuleEvent config = {VALKEYMODULE_EVENT_CONFIG, 1};
    return SubscribeToServerEvent(ctx, config, on_config_change) == VALKEYMODULE_OK;
}

char *iungo_config_get(ValkeyModuleCtx *ctx, const char *name, size_t *len) {
    ValkeyModuleCallReply *r = Call(ctx, "CONFIG", "cc", "GET", name);
    char *out = NULL;
    *len = 0;
    if (r && CallReplyType(r) == VALKEYMODULE_REPLY_ARRAY && CallReplyLength(r) == 2) {
        size_t n;
        const char *v = CallReplyStringPtr(CallReplyArrayElement(r, 1), &n);
        if (v && (out = malloc(n + 1))) {
            memcpy(out, v, n);
            out[n] = 0;
            *len = n;
        }
    }
    if (r) FreeCallReply(r);
    return out;
}

/* ---- Blocked clients and the global lock ---- */

static int finish_blocked(ValkeyModuleCtx *ctx, ValkeyModuleString **argv, int argc) {
    (void)argv, (void)argc;
    goFinishBlocked(ctx, (uint64_t)(uintptr_t)GetBlockedClientPrivateData(ctx));
    return VALKEYMODULE_OK;
}

void *iungo_block(ValkeyModuleCtx *ctx) {
    if (GetContextFlags(ctx) & (VALKEYMODULE_CTX_FLAGS_DENY_BLOCKING | VALKEYMODULE_CTX_FLAGS_MULTI |
                                VALKEYMODULE_CTX_FLAGS_LUA))
        return NULL;
    return BlockClient(ctx, finish_blocked, NULL, NULL, 0);
}

static void timer_fired(ValkeyModuleCtx *ctx, void *data) {
    goTimer(ctx, (uint64_t)(uintptr_t)data);
}

void iungo_timer(ValkeyModuleCtx *ctx, long long ms, uint64_t id) {
    CreateTimer(ctx, ms, timer_fired, (void *)(uintptr_t)id);
}

void iungo_unblock(void *bc, uint64_t id) {
    UnblockClient(bc, (void *)(uintptr_t)id);
}

ValkeyModuleCtx *iungo_lock(void) {
    ValkeyModuleCtx *ctx = GetThreadSafeContext(NULL);
    ThreadSafeContextLock(ctx);
    return ctx;
}

void iungo_unlock(ValkeyModuleCtx *ctx) {
    ThreadSafeContextUnlock(ctx);
    FreeThreadSafeContext(ctx);
}
