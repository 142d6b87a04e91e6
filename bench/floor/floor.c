/* The floor of benchmark scenario 4: a minimal C module doing what a
 * trigger on key:* / set with the script server.call('INCR', 'counter')
 * does, with no interpreter and no Go. On a "set" event of a key starting
 * with "key:" it adds a post-notification job that increments "counter"
 * with ValkeyModule_Call, replicated. Bench only; built by the benchmark.
 * The API entries it uses are declared here from the public API. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define VALKEYMODULE_OK 0
#define VALKEYMODULE_ERR 1
#define VALKEYMODULE_NOTIFY_STRING (1 << 3)

typedef struct ValkeyModuleCtx ValkeyModuleCtx;
typedef struct ValkeyModuleString ValkeyModuleString;
typedef struct ValkeyModuleCallReply ValkeyModuleCallReply;

static int (*GetApi)(const char *, void *);
static void (*SetModuleAttribs)(ValkeyModuleCtx *, const char *, int, int);
static int (*SubscribeToKeyspaceEvents)(ValkeyModuleCtx *, int,
                                        int (*)(ValkeyModuleCtx *, int, const char *, ValkeyModuleString *));
static int (*AddPostNotificationJob)(ValkeyModuleCtx *, void (*)(ValkeyModuleCtx *, void *), void *, void (*)(void *));
static const char *(*StringPtrLen)(const ValkeyModuleString *, size_t *);
static ValkeyModuleCallReply *(*Call)(ValkeyModuleCtx *, const char *, const char *, ...);
static void (*FreeCallReply)(ValkeyModuleCallReply *);

static void incr(ValkeyModuleCtx *ctx, void *pd) {
    (void)pd;
    ValkeyModuleCallReply *r = Call(ctx, "INCR", "c!E", "counter");
    if (r) FreeCallReply(r);
}

static int on_event(ValkeyModuleCtx *ctx, int type, const char *event, ValkeyModuleString *key) {
    (void)type;
    size_t len;
    const char *k = StringPtrLen(key, &len);
    if (strcmp(event, "set") == 0 && len >= 4 && memcmp(k, "key:", 4) == 0)
        AddPostNotificationJob(ctx, incr, NULL, NULL);
    return VALKEYMODULE_OK;
}

#define GET(name) if (GetApi("ValkeyModule_" #name, (void *)&name) != VALKEYMODULE_OK) return VALKEYMODULE_ERR

int ValkeyModule_OnLoad(ValkeyModuleCtx *ctx, ValkeyModuleString **argv, int argc) {
    (void)argv, (void)argc;
    GetApi = (int (*)(const char *, void *))(unsigned long)((void **)ctx)[0];
    GET(SetModuleAttribs);
    GET(SubscribeToKeyspaceEvents);
    GET(AddPostNotificationJob);
    GET(StringPtrLen);
    GET(Call);
    GET(FreeCallReply);
    SetModuleAttribs(ctx, "floor", 1, 1);
    return SubscribeToKeyspaceEvents(ctx, VALKEYMODULE_NOTIFY_STRING, on_event);
}
