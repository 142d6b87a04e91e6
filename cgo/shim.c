/* The thin C shim of the iungo module: it resolves the API entries, exports
 * ValkeyModule_OnLoad, drops events no trigger can want before they reach
 * Go, and turns Go's requests into API calls. */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

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

typedef struct ValkeyModuleCallReply ValkeyModuleCallReply;
typedef struct ValkeyModuleCommand ValkeyModuleCommand;

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

#define IUNGO_MODULE_NAME "iungo"
#define IUNGO_MODULE_VERSION 100 /* 0.1.0 */

/* A context for log lines from any thread, with the module's name. */
static ValkeyModuleCtx *log_ctx;

/* Classes of events that can fire a trigger. Only the main thread reads and
 * writes it. */
static int filter_classes;

/* Call format: argv vector, replicate to replicas and AOF, errors as
 * replies, script mode (commands flagged noscript are refused). */
#define CALL_FORMAT "v!ES"

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
    return VALKEYMODULE_OK;
fail:
    Log(ctx, "warning",
        "iungo requires Valkey 7.2 or later: this server lacks ValkeyModule_%s. Load refused.", missing);
    return VALKEYMODULE_ERR;
}

static int on_event(ValkeyModuleCtx *ctx, int type, const char *event, ValkeyModuleString *key) {
    if (!(type & filter_classes)) return VALKEYMODULE_OK;
    size_t klen;
    const char *k = StringPtrLen(key, &klen);
    goOnEvent(ctx, (char *)event, strlen(event), (char *)k, klen);
    return VALKEYMODULE_OK;
}

static void run_job(ValkeyModuleCtx *ctx, void *pd) {
    goRunJob(ctx, (uint64_t)(uintptr_t)pd);
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

void iungo_subscribe(ValkeyModuleCtx *ctx, int classes) {
    SubscribeToKeyspaceEvents(ctx, classes, on_event);
}

void iungo_set_filter(int classes) {
    filter_classes = classes;
}

int iungo_ctx_flags(ValkeyModuleCtx *ctx) {
    return GetContextFlags(ctx);
}

int iungo_selected_db(ValkeyModuleCtx *ctx) {
    return GetSelectedDb(ctx);
}

int iungo_add_job(ValkeyModuleCtx *ctx, uint64_t id) {
    return AddPostNotificationJob(ctx, run_job, (void *)(uintptr_t)id, NULL) == VALKEYMODULE_OK;
}

void iungo_replicate_verbatim(ValkeyModuleCtx *ctx) {
    ReplicateVerbatim(ctx);
}

/* ---- Reply serialisation (the format is documented in reply.go). ---- */

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

static const char *errno_message(int err) {
    switch (err) {
    case EBADF: return "ERR internal error: bad call format";
    case EINVAL: return "ERR Wrong number of args calling command from script";
    case ENOENT: return "ERR Unknown command called from script";
    case EPERM: return "ERR key lives in another cluster slot than this node serves";
    case EROFS: return "ERR cluster is read-only";
    case ENETDOWN: return "ERR cluster is down";
    case ENOTSUP: return "ERR no ACL user attached to the trigger context";
    case EACCES: return "NOPERM ACL denied the command";
    case ENOSPC: return "OOM command not allowed when used memory > 'maxmemory'";
    case ESPIPE: return "ERR This Valkey command is not allowed from script";
    default: return "ERR command failed";
    }
}

/* script_error returns the message Valkey's own Lua scripting shows for
 * errors it words differently from the command's reply, or NULL. */
static const char *script_error(ValkeyModuleCallReply *r, int err) {
    size_t len;
    const char *msg = CallReplyStringPtr(r, &len);
#define STARTS(prefix) (len >= sizeof(prefix) - 1 && memcmp(msg, prefix, sizeof(prefix) - 1) == 0)
    if (err == ESPIPE && STARTS("ERR command ")) return "ERR This Valkey command is not allowed from script";
    if (err == EINVAL && STARTS("ERR wrong number of arguments for "))
        return "ERR Wrong number of args calling command from script";
    if (err == ENOENT && STARTS("ERR unknown command '")) return "ERR Unknown command called from script";
#undef STARTS
    return NULL;
}

char *iungo_call(ValkeyModuleCtx *ctx, const char *buf, const size_t *lens, int argc, size_t *outlen) {
    buf_t out = {0};
    char name[64];
    if (argc < 1 || lens[0] >= sizeof(name) || memchr(buf, 0, lens[0])) {
        const char *msg = "ERR Unknown command called from script";
        put_bytes(&out, '-', msg, strlen(msg));
        *outlen = out.len;
        return out.p;
    }
    memcpy(name, buf, lens[0]);
    name[lens[0]] = 0;

    ValkeyModuleString *small[16];
    ValkeyModuleString **args = small;
    int nargs = argc - 1;
    if (nargs > 16) args = malloc(sizeof(*args) * (size_t)nargs);
    const char *p = buf + lens[0];
    for (int i = 0; i < nargs; i++) {
        args[i] = CreateString(ctx, p, lens[i + 1]);
        p += lens[i + 1];
    }
    errno = 0;
    ValkeyModuleCallReply *r = nargs > 0 ? Call(ctx, name, CALL_FORMAT, args, (size_t)nargs)
                                         : Call(ctx, name, CALL_FORMAT + 1); /* no vector */
    int err = errno;
    for (int i = 0; i < nargs; i++) FreeString(ctx, args[i]);
    if (args != small) free(args);

    const char *rewrite = r && CallReplyType(r) == VALKEYMODULE_REPLY_ERROR ? script_error(r, err) : NULL;
    if (rewrite) {
        put_bytes(&out, '-', rewrite, strlen(rewrite));
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

int iungo_create_subcommand(ValkeyModuleCtx *ctx, const char *name, const char *flags) {
    ValkeyModuleCommand *parent = GetCommand(ctx, "iungo");
    if (!parent) return 0;
    return CreateSubcommand(parent, name, on_command, flags, 0, 0, 0) == VALKEYMODULE_OK;
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
