/* The floor of benchmark scenario 3: a C module subscribed to string-class
 * keyspace events that does nothing with them. What it costs is what the
 * server spends calling any module subscriber, per event. Bench only; built
 * by the benchmark. The API entries it uses are declared here from the
 * public API. */
#define VALKEYMODULE_OK 0
#define VALKEYMODULE_ERR 1
#define VALKEYMODULE_NOTIFY_STRING (1 << 3)

typedef struct ValkeyModuleCtx ValkeyModuleCtx;
typedef struct ValkeyModuleString ValkeyModuleString;

static int (*GetApi)(const char *, void *);
static void (*SetModuleAttribs)(ValkeyModuleCtx *, const char *, int, int);
static int (*SubscribeToKeyspaceEvents)(ValkeyModuleCtx *, int,
                                        int (*)(ValkeyModuleCtx *, int, const char *, ValkeyModuleString *));

static int on_event(ValkeyModuleCtx *ctx, int type, const char *event, ValkeyModuleString *key) {
    (void)ctx, (void)type, (void)event, (void)key;
    return VALKEYMODULE_OK;
}

#define GET(name) if (GetApi("ValkeyModule_" #name, (void *)&name) != VALKEYMODULE_OK) return VALKEYMODULE_ERR

int ValkeyModule_OnLoad(ValkeyModuleCtx *ctx, ValkeyModuleString **argv, int argc) {
    (void)argv, (void)argc;
    GetApi = (int (*)(const char *, void *))(unsigned long)((void **)ctx)[0];
    GET(SetModuleAttribs);
    GET(SubscribeToKeyspaceEvents);
    SetModuleAttribs(ctx, "subscribed", 1, 1);
    return SubscribeToKeyspaceEvents(ctx, VALKEYMODULE_NOTIFY_STRING, on_event);
}
