package module

import (
	"errors"
	"fmt"
	"math"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/valkey-iungo/valkey-iungo/config"
	"github.com/valkey-iungo/valkey-iungo/router"
	"github.com/valkey-iungo/valkey-iungo/scripting"
)

// command is one IUNGO subcommand: Name is one or two words after IUNGO.
type command struct {
	name  string
	usage string // arguments after the name
	arity int    // exact argument count; -n means at least n
	kind  kind
	help  string
	run   func(m *Module, ctx Ctx, args []string) error
}

// kind says what a subcommand does to the configuration.
type kind int

const (
	kindRead    kind = iota // reads it
	kindOperate             // changes state only an operator controls (PAUSE): primary only, replicated
	kindManage              // changes it: also refused in production mode, where iungo owns it
	kindSync                // fetches it from iungo: primary only, replicated as a RESTORE
	kindDebug               // IUNGO DEBUG, with iungo.debug-commands yes only
	kindLocal               // changes this node's counters only: anywhere, not replicated
)

func (c *command) writes() bool { return c.kind == kindOperate || c.kind == kindManage }

// commands is the whole IUNGO command set; HELP and the README list it in
// this order. It is filled in init because HELP reads it.
var commands []command

func init() {
	commands = []command{
		{"script set", "<name> <lua-source>", 2, kindManage, "Compile a script and install it under <name>, replacing the old version at once.", cmdScriptSet},
		{"script unset", "<name>", 1, kindManage, "Remove a script that no trigger uses.", cmdScriptUnset},
		{"script get", "<name>", 1, kindRead, "Return the source of a script.", cmdScriptGet},
		{"script list", "", 0, kindRead, "List the scripts with their size and the number of triggers using them.", cmdScriptList},
		{"script run", "<name> <key> [<event>] [DRYRUN]", -2, kindRead, "Run a script now as a trigger would for <key> and <event> (default set), and answer with what it returned, its log lines, its error and its run time. Its writes apply and replicate, as a client's would (primary only). With DRYRUN no write runs: each gets the status reply DRYRUN, and the reply lists them.", cmdScriptRun},
		{"try", "<name> <lua-source> <key> [<event>]", -3, kindRead, "Compile a script that is not installed (a draft) and run it once as SCRIPT RUN ... DRYRUN does (no write runs), checked against the caller's ACL rather than iungo.script-user. Its own ACL unit, iungo|try: testing needs no right to install.", cmdTry},
		{"trigger set", "<key-pattern> <events> <script> [WINDOW <ms>]", -3, kindManage, "Create the trigger (pattern, events), or point it at another script. <events> is a comma-separated list such as set,hset, or *. With WINDOW the events are gathered and the script runs once per window of <ms> (100 to 86400000) with KEYS = the keys that had events and ARGV = their counts, then the window's start and end in Unix ms.", cmdTriggerSet},
		{"trigger unset", "<key-pattern> <events>", 2, kindManage, "Remove a trigger.", cmdTriggerUnset},
		{"trigger enable", "<key-pattern> <events>", 2, kindManage, "Enable a trigger.", cmdTriggerEnable(true)},
		{"trigger disable", "<key-pattern> <events>", 2, kindManage, "Disable a trigger; it keeps its counters.", cmdTriggerEnable(false)},
		{"trigger list", "", 0, kindRead, "List the triggers in registration order with their counters and last error.", cmdTriggerList},
		{"trigger reset", "<key-pattern> <events>", 2, kindLocal, "Zero a trigger's counters on this node: runs, errors, last error, run times.", cmdTriggerReset},
		{"trigger match", "<key> [<event>]", -1, kindRead, "List the triggers whose pattern matches <key>, in the order they would run, each with fires 1 or 0 and, for 0, why not (disabled, paused, event class off, other event). Without <event>, says whether each would fire for one of its events.", cmdTriggerMatch},
		{"cron set", "<name> <schedule> <script>", 3, kindManage, "Create the cron <name>, or change its schedule or script: <script> runs at the times of <schedule> (a 5-field cron expression in UTC, or @every <duration> of 1s or more), on the primary, with KEYS empty, ARGV[1] = <name> and ARGV[2] = the scheduled time in Unix seconds. A new schedule starts from now.", cmdCronSet},
		{"cron unset", "<name>", 1, kindManage, "Remove a cron.", cmdCronUnset},
		{"cron enable", "<name>", 1, kindManage, "Enable a cron; the times it missed while disabled do not run.", cmdCronEnable(true)},
		{"cron disable", "<name>", 1, kindManage, "Disable a cron; it keeps its counters.", cmdCronEnable(false)},
		{"cron list", "", 0, kindRead, "List the crons by name with their schedule, next and last run, counters and last error.", cmdCronList},
		{"cron mark", "<name> <unix-ms> [RAN]", -2, kindManage, "Internal: the primary replicates it with each run (and when it first sees a cron) so that a scheduled time runs once, on whichever node is primary.", cmdCronMark},
		{"event set", "<class> [<class> ...]", -1, kindManage, "Enable event classes: names (generic, string, list, set, hash, zset, stream, expired, evicted, keymiss, new, module, all) or letters (g$lshztxemndA), comma- or space-separated.", cmdEventSet(true)},
		{"event unset", "<class> [<class> ...]", -1, kindManage, "Disable event classes; their events fire nothing.", cmdEventSet(false)},
		{"event list", "", 0, kindRead, "List the enabled event classes.", cmdEventList},
		{"pause", "", 0, kindOperate, "Stop running every trigger and cron.", cmdPause(true)},
		{"resume", "", 0, kindOperate, "Run triggers and crons again after PAUSE; a cron time that passed meanwhile runs once.", cmdPause(false)},
		{"sync", "", 0, kindSync, "Fetch the configuration from iungo now and apply it; answers with iungo's version once it is in force, or an error and the old configuration stays. Blocks only the calling client.", cmdSync},
		{"dump", "", 0, kindRead, "Return the whole configuration as one snapshot (the format the RDB holds).", cmdDump},
		{"restore", "<snapshot>", 1, kindManage, "Replace the whole configuration with a snapshot from IUNGO DUMP, all or nothing.", cmdRestore},
		{"info", "", 0, kindRead, "Show the configuration version, counts and counters.", cmdInfo},
		{"debug", "<PANIC|NILDEREF|EVENTPANIC|CRASH>", 1, kindDebug, "Provoke a Go panic in the command (PANIC), a nil dereference (NILDEREF) or a panic in the next keyspace event (EVENTPANIC): the server must survive. CRASH panics in a goroutine on purpose, killing the server, to show where the Go crash report goes. Needs iungo.debug-commands yes.", cmdDebug},
		{"help", "", 0, kindRead, "Show this help.", cmdHelp},
	}
}

// Noun is the first word after IUNGO: the unit the server's subcommand
// table, and so its ACL rules, know (iungo|trigger). Valkey resolves one
// subcommand level, so the verb after it is not an ACL unit.
type Noun struct {
	Name     string
	Writes   bool // some subcommand under it changes state
	ReadOnly bool // every subcommand under it only reads
}

// Nouns returns the first words of the subcommands in table order.
func Nouns() []Noun {
	var out []Noun
	for _, c := range commands {
		name, _, _ := strings.Cut(c.name, " ")
		if len(out) == 0 || out[len(out)-1].Name != name {
			out = append(out, Noun{Name: name, ReadOnly: true})
		}
		n := &out[len(out)-1]
		n.Writes = n.Writes || c.writes()
		n.ReadOnly = n.ReadOnly && c.kind == kindRead
	}
	return out
}

// errHandled means a command wrote its reply itself, or will once its
// client is unblocked, and replicated what it changed: Command adds
// nothing.
var errHandled = errors.New("handled by the command")

// Command runs one IUNGO command; argv[0] is "IUNGO". It always writes
// exactly one reply, an error reply for any refusal, and changes nothing
// when it refuses.
func (m *Module) Command(ctx Ctx, argv []string) {
	c, args, err := lookup(argv)
	if err == nil {
		err = m.allowed(ctx, c)
	}
	if err == nil {
		err = c.run(m, ctx, args)
	}
	switch {
	case err == errHandled:
	case err != nil:
		replyError(ctx, err)
	case c.writes():
		ctx.Replicate()
		m.noteSource(ctx)
	}
}

// replyError sends err as an error reply: an *Error as it is, anything
// else with the ERR code.
func replyError(w ReplyWriter, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = &Error{Code: "ERR", Message: err.Error()}
	}
	w.ReplyError(e.Error())
}

// noteSource records who made the change a command just made.
func (m *Module) noteSource(ctx Ctx) {
	switch f := ctx.Flags(); {
	case f&FlagLoading != 0:
		m.source = "aof"
	case f&FlagReplicated != 0:
		m.source = "replication"
	default:
		m.source = "commands"
	}
}

// offThread runs work on another goroutine while the command's client
// waits, then finish on the main thread, once the command is still allowed
// and writes are not paused (replicating then would abort the server);
// discard, if not nil, runs instead of finish when finish cannot run. It
// reports false where the client cannot wait (MULTI, a replica's or the
// AOF's replay): the caller then does the work in place.
func (m *Module) offThread(ctx Ctx, c *command, work func() error, finish func(Ctx), discard func()) bool {
	if ctx.Flags()&(FlagReplicated|FlagLoading) != 0 {
		return false
	}
	unblock, err := ctx.Block()
	if err != nil {
		return false
	}
	go func() {
		var err error
		func() {
			defer func() {
				if r := recover(); r != nil {
					err = fmt.Errorf("internal error in iungo: %v", r)
				}
			}()
			compileSlots <- struct{}{}
			defer func() { <-compileSlots }()
			err = work()
		}()
		unblock(func(ctx Ctx) {
			if err == nil {
				err = m.allowed(ctx, c)
			}
			if err == nil && ctx.WritesPaused() {
				err = errorf("writes were paused (CLIENT PAUSE or a failover) while IUNGO %s prepared the change; nothing changed: send it again once writes resume", strings.ToUpper(c.name))
			}
			if err != nil {
				if discard != nil {
					discard()
				}
				replyError(ctx, err)
				return
			}
			finish(ctx)
			m.source = "commands"
		})
	}()
	return true
}

// compileSlots bounds how many configurations compile at once off the
// main thread: each can take tens of MB.
var compileSlots = make(chan struct{}, 2)

// lookup finds the subcommand of argv and checks its arity.
func lookup(argv []string) (*command, []string, error) {
	if len(argv) < 2 {
		return nil, nil, errorf("wrong number of arguments for 'iungo' command; try IUNGO HELP")
	}
	noun := strings.ToLower(argv[1])
	var verbs []string
	for i := range commands {
		c := &commands[i]
		if c.name == noun {
			return c, argv[2:], checkArity(c, argv[2:])
		}
		if n, verb, ok := strings.Cut(c.name, " "); ok && n == noun {
			if len(argv) > 2 && strings.EqualFold(argv[2], verb) {
				return c, argv[3:], checkArity(c, argv[3:])
			}
			verbs = append(verbs, strings.ToUpper(verb))
		}
	}
	if len(verbs) == 0 {
		return nil, nil, errorf("unknown subcommand %q; try IUNGO HELP", truncate(argv[1]))
	}
	if len(argv) == 2 {
		return nil, nil, errorf("IUNGO %s needs one of %s; try IUNGO HELP", strings.ToUpper(noun), strings.Join(verbs, ", "))
	}
	return nil, nil, errorf("unknown subcommand %q for IUNGO %s; use one of %s", truncate(argv[2]), strings.ToUpper(noun), strings.Join(verbs, ", "))
}

func checkArity(c *command, args []string) error {
	if c.arity >= 0 && len(args) == c.arity || c.arity < 0 && len(args) >= -c.arity {
		return nil
	}
	return errorf("wrong number of arguments for IUNGO %s; usage: IUNGO %s", strings.ToUpper(c.name), c.synopsis())
}

func (c *command) synopsis() string {
	return strings.TrimSpace(strings.ToUpper(c.name) + " " + c.usage)
}

// allowed refuses changes on a replica and, in production mode, local
// changes of the configuration; what the primary sends and what the AOF
// replays always applies.
func (m *Module) allowed(ctx Ctx, c *command) error {
	switch c.kind {
	case kindRead, kindLocal:
		return nil
	case kindDebug:
		if !m.opts.DebugCommands {
			return errorf("IUNGO DEBUG is disabled; set iungo.debug-commands yes to use it")
		}
		return nil
	}
	f := ctx.Flags()
	if c.kind != kindSync && f&(FlagReplicated|FlagLoading) != 0 {
		return nil
	}
	if f&FlagReplica != 0 {
		return &Error{Code: "READONLY", Message: "this server is a replica; change triggers on its primary, which replicates them here"}
	}
	if o := m.sync.options(); c.kind == kindManage && o.Endpoint != "" {
		// iungo's next sync would revert the change without a word.
		return errorf("this node follows iungo namespace %q (iungo.endpoint is set): change the configuration in iungo, or CONFIG SET iungo.endpoint \"\" to manage it with IUNGO %s", o.Namespace, strings.ToUpper(c.name))
	}
	if c.kind == kindManage && m.opts.Mode == ModeProduction {
		return errorf("iungo.mode is production: the configuration comes from iungo (IUNGO SYNC) or the manifest, not from IUNGO %s; use iungo, or set iungo.mode dev", strings.ToUpper(c.name))
	}
	return nil
}

// truncate keeps error replies short when a client sends a huge argument.
func truncate(s string) string {
	const max = 64
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}

func ok(w ReplyWriter) error {
	w.ReplyStatus("OK")
	return nil
}

// okUnless replies OK unless the change failed.
func okUnless(w ReplyWriter, err error) error {
	if err != nil {
		return err
	}
	return ok(w)
}

// cmdScriptSet compiles off the main thread: compiling takes about a
// quarter of a millisecond per KB of source.
func cmdScriptSet(m *Module, ctx Ctx, args []string) error {
	name, source := args[0], args[1]
	if err := config.CheckName("script name", name); err != nil {
		return err
	}
	var s *scripting.Script
	compile := func() (err error) {
		s, err = compileScript(name, source)
		return err
	}
	if m.offThread(ctx, commandNamed("script set"), compile, func(ctx Ctx) {
		m.installScript(s)
		ctx.ReplicateCommand([]string{"IUNGO", "SCRIPT", "SET", name, source})
		ctx.ReplyStatus("OK")
	}, nil) {
		return errHandled
	}
	return okUnless(ctx, m.SetScript(name, source))
}

// commandNamed returns the subcommand called name.
func commandNamed(name string) *command {
	for i := range commands {
		if commands[i].name == name {
			return &commands[i]
		}
	}
	panic("module: no subcommand " + name)
}

func cmdScriptUnset(m *Module, w Ctx, args []string) error {
	return okUnless(w, m.UnsetScript(args[0]))
}

func cmdScriptGet(m *Module, w Ctx, args []string) error {
	src, err := m.Script(args[0])
	if err != nil {
		return err
	}
	w.ReplyString(src)
	return nil
}

func cmdScriptList(m *Module, w Ctx, _ []string) error {
	users := map[string]int{}
	for _, t := range m.triggers {
		users[t.Script]++
	}
	names := m.ScriptNames()
	w.ReplyArray(len(names))
	for _, name := range names {
		w.ReplyMap(3)
		w.ReplyString("name")
		w.ReplyString(name)
		w.ReplyString("bytes")
		w.ReplyInt(int64(len(m.scripts[name].Source)))
		w.ReplyString("triggers")
		w.ReplyInt(int64(users[name]))
	}
	return nil
}

func cmdTriggerSet(m *Module, w Ctx, args []string) error {
	var window time.Duration
	switch {
	case len(args) == 5 && strings.EqualFold(args[3], "window"):
		ms, err := strconv.ParseInt(args[4], 10, 64)
		if err != nil || ms <= 0 {
			return errorf("WINDOW wants a length in ms, such as 60000, got %q", truncate(args[4]))
		}
		window = time.Duration(ms) * time.Millisecond
	case len(args) != 3:
		return errorf("wrong number of arguments for IUNGO TRIGGER SET; usage: IUNGO TRIGGER SET <key-pattern> <events> <script> [WINDOW <ms>]")
	}
	_, err := m.SetTrigger(args[0], args[1], args[2], window)
	return okUnless(w, err)
}

func cmdTriggerUnset(m *Module, w Ctx, args []string) error {
	return okUnless(w, m.UnsetTrigger(args[0], args[1]))
}

// cmdTriggerEnable is TRIGGER ENABLE (on) or DISABLE.
func cmdTriggerEnable(on bool) func(*Module, Ctx, []string) error {
	return func(m *Module, w Ctx, args []string) error {
		return okUnless(w, m.EnableTrigger(args[0], args[1], on))
	}
}

// replyTrigger opens a map of n fields with the trigger's first three:
// pattern, events and script.
func replyTrigger(w ReplyWriter, t *Trigger, n int) {
	w.ReplyMap(n)
	w.ReplyString("pattern")
	w.ReplyString(t.Pattern)
	w.ReplyString("events")
	w.ReplyString(config.FormatEvents(t.Events))
	w.ReplyString("script")
	w.ReplyString(t.Script)
}

func cmdTriggerList(m *Module, w Ctx, _ []string) error {
	ts := m.sortedTriggers()
	w.ReplyArray(len(ts))
	for _, t := range ts {
		replyTrigger(w, t, 11)
		w.ReplyString("window_ms")
		w.ReplyInt(t.Window.Milliseconds())
		w.ReplyString("gathered")
		w.ReplyInt(int64(t.Gathered))
		w.ReplyString("enabled")
		w.ReplyInt(boolInt(t.Enabled))
		replyRunCounters(w, t.Runs, t.Errors, t.LastError, t.RunTime, t.MaxRunTime)
	}
	return nil
}

// replyRunCounters writes the counters TRIGGER LIST and CRON LIST show,
// as five map entries.
func replyRunCounters(w ReplyWriter, runs, errors uint64, lastError string, total, longest time.Duration) {
	w.ReplyString("runs")
	w.ReplyInt(int64(runs))
	w.ReplyString("errors")
	w.ReplyInt(int64(errors))
	w.ReplyString("last_error")
	w.ReplyString(lastError)
	w.ReplyString("run_us_total")
	w.ReplyInt(total.Microseconds())
	w.ReplyString("run_us_max")
	w.ReplyInt(longest.Microseconds())
}

// cmdTriggerReset is TRIGGER RESET: counters are the node's own, so the
// command is not replicated.
func cmdTriggerReset(m *Module, w Ctx, args []string) error {
	t, err := m.trigger(args[0], args[1])
	if err != nil {
		return err
	}
	t.RunStats = RunStats{}
	w.ReplyStatus("OK")
	return nil
}

// cmdScriptRun is SCRIPT RUN <name> <key> [<event>] [DRYRUN].
func cmdScriptRun(m *Module, ctx Ctx, args []string) error {
	name, key, event, dry := args[0], args[1], "set", false
	eventGiven := false
	for _, a := range args[2:] {
		switch {
		case strings.EqualFold(a, "dryrun") && !dry:
			dry = true
		case !eventGiven && !dry:
			event, eventGiven = strings.ToLower(a), true
			if _, ok := config.EventClass(event); !ok {
				return fmt.Errorf("unknown event %q; use names from keyspace notifications (set, hset, del, expired, ...)", a)
			}
		default:
			return errorf("wrong number of arguments for IUNGO SCRIPT RUN; usage: IUNGO SCRIPT RUN <name> <key> [<event>] [DRYRUN]")
		}
	}
	s := m.scripts[name]
	if s == nil {
		return fmt.Errorf("unknown script %q; IUNGO SCRIPT LIST shows the scripts", name)
	}
	return runNow(m, ctx, s, key, event, dry, m.opts.ScriptUser)
}

// cmdTry is TRY: a dry run of a source that is not installed, such as a
// draft in iungo. It never writes, so it is its own ACL unit (iungo|try):
// a user may test scripts without being able to install them.
func cmdTry(m *Module, ctx Ctx, args []string) error {
	name, source, key, event := args[0], args[1], args[2], "set"
	switch len(args) {
	case 3:
	case 4:
		event = strings.ToLower(args[3])
		if _, ok := config.EventClass(event); !ok {
			return fmt.Errorf("unknown event %q; use names from keyspace notifications (set, hset, del, expired, ...)", args[3])
		}
	default:
		return errorf("wrong number of arguments for IUNGO TRY; usage: IUNGO TRY <name> <lua-source> <key> [<event>]")
	}
	if err := config.CheckName("script name", name); err != nil {
		return err
	}
	s, err := scripting.Compile(name, source)
	if err != nil {
		return err
	}
	// As the caller, never iungo.script-user: a right to test scripts must
	// not read what its holder may not.
	return runNow(m, ctx, s, key, event, true, "")
}

// runNow runs s once for key and event, as a trigger would, as user (""
// is the calling client's user), and answers with what it did; dry runs
// no write.
func runNow(m *Module, ctx Ctx, s *scripting.Script, key, event string, dry bool, user string) error {
	if !dry {
		switch f := ctx.Flags(); {
		case f&FlagReplica != 0:
			return &Error{Code: "READONLY", Message: "this server is a replica; run the script on its primary, or add DRYRUN"}
		case ctx.WritesPaused():
			return errorf("writes are paused: the script may write; add DRYRUN, or run it once writes resume")
		case ctx.OutOfMemory():
			return &Error{Code: "OOM", Message: "command not allowed when used memory > 'maxmemory'; add DRYRUN"}
		}
	}
	if err := ctx.AttachUser(user); err != nil {
		return err
	}
	defer ctx.DetachUser()
	if m.depth == 0 && m.unit.open {
		m.endUnit() // the last command's jobs are over
	}
	h := &tryHost{jobHost: jobHost{m: m, ctx: ctx, key: key, slot: -1}, dry: dry}
	if m.cluster {
		h.slot = KeySlot(key)
	}
	start := time.Now()
	ret, err := m.engine.Try(s, scripting.Input{Key: key, Event: event, DB: ctx.DB()}, h)
	took := time.Since(start)
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	n := 4
	if dry {
		n++
	}
	ctx.ReplyMap(n)
	ctx.ReplyString("returned")
	ctx.ReplyString(formatReply(ret))
	ctx.ReplyString("error")
	ctx.ReplyString(msg)
	ctx.ReplyString("logs")
	ctx.ReplyArray(len(h.logs))
	for _, l := range h.logs {
		ctx.ReplyString(l)
	}
	ctx.ReplyString("run_us")
	ctx.ReplyInt(took.Microseconds())
	if dry {
		ctx.ReplyString("writes")
		ctx.ReplyArray(len(h.writes))
		for _, w := range h.writes {
			ctx.ReplyString(w)
		}
	}
	return nil
}

// tryHost is the host of IUNGO SCRIPT RUN: it keeps the script's log lines
// for the reply (and logs them too) and, for a dry run, refuses writes.
type tryHost struct {
	jobHost
	dry    bool
	logs   []string
	writes []string
}

// dryRunReply is what a script reads for a write a dry run did not make.
const dryRunReply = "DRYRUN"

func (h *tryHost) Call(args []string) scripting.Reply {
	if h.dry && h.ctx != nil && writes(h.ctx, args) {
		h.writes = append(h.writes, commandLine(args))
		return scripting.Reply{Kind: scripting.ReplyStatus, Str: dryRunReply}
	}
	return h.jobHost.Call(args)
}

func (h *tryHost) Log(level int, msg string) {
	h.logs = append(h.logs, string(scriptLogLevels[level])+": "+msg)
	h.jobHost.Log(level, msg)
}

// writes says whether a command changes data or reaches other clients:
// a key it writes, or a publish.
func writes(ctx Ctx, args []string) bool {
	if name := strings.ToLower(args[0]); name == "publish" || name == "spublish" {
		return true
	}
	for _, k := range ctx.CommandKeys(args) {
		if k.Write {
			return true
		}
	}
	return false
}

// commandLine shows a command as valkey-cli takes it: arguments quoted
// where they need it.
func commandLine(args []string) string {
	parts := make([]string, len(args))
	for i, a := range args {
		parts[i] = a
		if a == "" || strings.ContainsAny(a, " \t\r\n\"'\\") || !isPrintable(a) {
			parts[i] = strconv.Quote(a)
		}
	}
	return strings.Join(parts, " ")
}

func isPrintable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// formatReply writes a script's return value as valkey-cli shows it:
// "text", (integer) 3, (nil), OK, (error) ..., and arrays in brackets.
func formatReply(r scripting.Reply) string {
	switch r.Kind {
	case scripting.ReplyString:
		return strconv.Quote(r.Str)
	case scripting.ReplyInteger:
		return "(integer) " + strconv.FormatInt(r.Int, 10)
	case scripting.ReplyStatus:
		return r.Str
	case scripting.ReplyError:
		return "(error) " + r.Str
	case scripting.ReplyArray:
		parts := make([]string, len(r.Elems))
		for i, el := range r.Elems {
			parts[i] = formatReply(el)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	return "(nil)"
}

// cmdTriggerMatch is TRIGGER MATCH <key> [<event>].
func cmdTriggerMatch(m *Module, w Ctx, args []string) error {
	if len(args) > 2 {
		return errorf("wrong number of arguments for IUNGO TRIGGER MATCH; usage: IUNGO TRIGGER MATCH <key> [<event>]")
	}
	key, event := args[0], ""
	if len(args) == 2 {
		event = strings.ToLower(args[1])
		if _, ok := config.EventClass(event); !ok {
			return fmt.Errorf("unknown event %q; use names from keyspace notifications (set, hset, del, expired, ...)", args[1])
		}
	}
	var matched []*Trigger
	for _, t := range m.sortedTriggers() {
		if router.Match(t.Pattern, key) {
			matched = append(matched, t)
		}
	}
	w.ReplyArray(len(matched))
	for _, t := range matched {
		why := m.whyNotFire(t, event)
		replyTrigger(w, t, 5)
		w.ReplyString("fires")
		w.ReplyInt(boolInt(why == ""))
		w.ReplyString("why_not")
		w.ReplyString(why)
	}
	return nil
}

// whyNotFire says why t would not run for event on a key its pattern
// matches ("" if it would); event "" means any of t's events.
func (m *Module) whyNotFire(t *Trigger, event string) string {
	switch {
	case !t.Enabled:
		return "disabled"
	case m.paused:
		return "paused (IUNGO RESUME)"
	case event != "" && !t.wants(event):
		return "other event: it fires on " + config.FormatEvents(t.Events)
	}
	if event != "" {
		if c, _ := config.EventClass(event); m.classes&c == 0 {
			return "event class off: " + strings.Join(config.ClassNames(c), ",") + " (IUNGO EVENT SET)"
		}
		return ""
	}
	if t.Events == nil {
		if m.classes == 0 {
			return "event class off: every class (IUNGO EVENT SET)"
		}
		return ""
	}
	var off []string
	for _, e := range t.Events {
		c, _ := config.EventClass(e)
		if m.classes&c != 0 {
			return ""
		}
		off = append(off, config.ClassNames(c)...)
	}
	return "event class off: " + strings.Join(slices.Compact(off), ",") + " (IUNGO EVENT SET)"
}

// cmdEventSet is EVENT SET (on) or UNSET.
func cmdEventSet(on bool) func(*Module, Ctx, []string) error {
	return func(m *Module, w Ctx, args []string) error {
		mask, err := config.ParseClasses(args)
		if err != nil {
			return err
		}
		m.SetClasses(mask, on)
		return ok(w)
	}
}

func cmdEventList(m *Module, w Ctx, _ []string) error {
	names := config.ClassNames(m.classes)
	w.ReplyArray(len(names))
	for _, n := range names {
		w.ReplyString(n)
	}
	return nil
}

// cmdPause is PAUSE (paused) or RESUME.
func cmdPause(paused bool) func(*Module, Ctx, []string) error {
	return func(m *Module, w Ctx, _ []string) error {
		m.SetPaused(paused)
		return ok(w)
	}
}

func cmdInfo(m *Module, w Ctx, _ []string) error {
	fields := m.Info()
	w.ReplyMap(len(fields))
	for _, f := range fields {
		w.ReplyString(f.Name)
		switch v := f.Value.(type) {
		case int64:
			w.ReplyInt(v)
		default:
			w.ReplyString(fmt.Sprint(v))
		}
	}
	return nil
}

func cmdDump(m *Module, w Ctx, _ []string) error {
	w.ReplyString(string(config.Encode(m.Config())))
	return nil
}

// cmdRestore prepares the configuration off the main thread when it can.
// Replayed from the AOF or sent by the primary, the snapshot's version is
// the truth and the command is replicated as it came; restored by hand,
// the version still only moves forward, and what is replicated is the
// snapshot as installed, so that replicas get the same version.
func cmdRestore(m *Module, ctx Ctx, args []string) error {
	c, err := config.Decode([]byte(args[0]))
	if err != nil {
		return errorf("bad snapshot: %v", err)
	}
	if ctx.Flags()&(FlagLoading|FlagReplicated) != 0 {
		return okUnless(ctx, m.Replace(c, "restore"))
	}
	install := func(ctx Ctx, p *Prepared) {
		p.cfg.Revision = max(c.Revision, m.revision+1)
		m.Install(p, "restore")
		ctx.ReplicateRestore(p.body.Finish(m.header()))
		ctx.ReplyStatus("OK")
	}
	var p *Prepared
	prepare := func() (err error) {
		p, err = m.Prepare(c, nil)
		return err
	}
	discard := func() {
		if p != nil {
			p.Discard(m)
		}
	}
	if m.offThread(ctx, commandNamed("restore"), prepare, func(ctx Ctx) { install(ctx, p) }, discard) {
		return errHandled
	}
	if p, err = m.Prepare(c, m.reuseCompiled); err != nil {
		return err
	}
	install(ctx, p)
	return errHandled
}

func cmdSync(m *Module, w Ctx, _ []string) error {
	if err := checkOptions(m.sync.options()); err != nil {
		return errorf("%v; IUNGO SYNC needs iungo.endpoint, iungo.namespace, iungo.token and iungo.public-key", err)
	}
	m.sync.mu.Lock()
	started := m.sync.started
	m.sync.mu.Unlock()
	if !started {
		return errorf("the server is still loading its data; try again in a moment")
	}
	unblock, err := w.Block()
	if err != nil {
		return errorf("IUNGO SYNC cannot wait here (MULTI or a script); send it on its own")
	}
	m.sync.request(func(version uint64, err error) {
		unblock(func(ctx Ctx) {
			if err != nil {
				ctx.ReplyError("ERR iungo sync failed: " + strings.TrimPrefix(err.Error(), "ERR ") + "; the configuration in force stays")
				return
			}
			ctx.ReplyInt(int64(version))
		})
	})
	return errHandled
}

func cmdDebug(m *Module, w Ctx, args []string) error {
	switch strings.ToUpper(args[0]) {
	case "PANIC":
		panic("IUNGO DEBUG PANIC")
	case "NILDEREF":
		var t *Trigger
		return errorf("unreachable: %s", t.Pattern)
	case "EVENTPANIC":
		m.debugEventPanic = true
		return ok(w)
	case "CRASH":
		// The one goroutine without recover, on purpose: it shows where the
		// Go runtime's crash report goes (iungo-crash.log).
		go panic("IUNGO DEBUG CRASH")
		return ok(w)
	}
	return errorf("unknown IUNGO DEBUG action %q; use PANIC, NILDEREF, EVENTPANIC or CRASH", truncate(args[0]))
}

func cmdHelp(_ *Module, w Ctx, _ []string) error {
	w.ReplyArray(2*len(commands) + 1)
	w.ReplyStatus("IUNGO <subcommand> [<arg> ...]. Subcommands are:")
	for _, c := range commands {
		w.ReplyStatus(c.synopsis())
		w.ReplyStatus("    " + c.help)
	}
	return nil
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// InfoField is one line of IUNGO INFO and of the iungo section of INFO.
type InfoField struct {
	Name  string
	Value any // int64 or string
}

// Info returns the module's state and counters.
func (m *Module) Info() []InfoField {
	enabled := 0
	for _, t := range m.triggers {
		if t.Enabled {
			enabled++
		}
	}
	return append([]InfoField{
		{"revision", int64(m.revision)},
		{"config_digest", m.ConfigDigest()},
		{"namespace_id", m.origin.NamespaceID},
		{"namespace_version", int64(m.origin.Version)},
		{"configured", boolInt(len(m.scripts)+len(m.triggers) > 0)},
		{"config_source", m.source},
		{"manifest", m.ManifestPath()},
		{"scripts", int64(len(m.scripts))},
		{"triggers", int64(len(m.triggers))},
		{"triggers_enabled", int64(enabled)},
		{"crons", int64(len(m.crons))},
		{"cron_runs", int64(m.stats.CronRuns)},
		{"window_runs", int64(m.stats.WindowRuns)},
		{"window_gathered", int64(m.stats.Gathered)},
		{"window_overflows", int64(m.stats.WindowOverflows)},
		{"paused", boolInt(m.paused)},
		{"event_classes", strings.Join(config.ClassNames(m.classes), ",")},
		{"events", int64(m.stats.Events)},
		{"runs", int64(m.stats.Runs)},
		{"errors", int64(m.stats.Errors)},
		{"depth_skips", int64(m.stats.DepthSkips)},
		{"budget_skips", int64(m.stats.BudgetSkips)},
		{"pause_skips", int64(m.stats.PauseSkips)},
		{"oom_skips", int64(m.stats.OOMSkips)},
		{"migration_events", int64(m.migrations())},
		{"pending_jobs", int64(m.jobs.len())},
		{"mode", m.opts.Mode},
		{"cluster", boolInt(m.cluster)},
	}, append(m.syncInfo(), goRuntimeInfo()...)...)
}

// syncInfo is what INFO shows of the sync with iungo.
func (m *Module) syncInfo() []InfoField {
	o, st := m.sync.options(), m.sync.State()
	last := ""
	if !st.LastSyncAt.IsZero() {
		last = st.LastSyncAt.UTC().Format(time.RFC3339)
	}
	return []InfoField{
		{"endpoint", o.Endpoint},
		{"namespace", o.Namespace},
		{"node_id", o.NodeID},
		{"registered", boolInt(st.Registered)},
		{"sync_last_at", last},
		{"sync_last_error", st.LastError},
		{"syncs", int64(st.Syncs)},
		{"sync_failures", int64(st.Failures)},
		{"sync_apply_us", st.LastApply.Microseconds()},
		{"sync_apply_max_us", st.MaxApply.Microseconds()},
	}
}

// goRuntimeSamples are the Go runtime figures INFO shows: the Go heap is
// invisible to Valkey's used_memory and maxmemory.
var goRuntimeSamples = []struct{ field, metric string }{
	{"go_heap_bytes", "/memory/classes/heap/objects:bytes"},
	{"go_total_bytes", "/memory/classes/total:bytes"},
	{"go_gc_cycles", "/gc/cycles/total:gc-cycles"},
	{"go_goroutines", "/sched/goroutines:goroutines"},
	{"go_maxprocs", "/sched/gomaxprocs:threads"},
	{"go_memory_limit_bytes", "/gc/gomemlimit:bytes"},
}

func goRuntimeInfo() []InfoField {
	samples := make([]metrics.Sample, len(goRuntimeSamples))
	for i, s := range goRuntimeSamples {
		samples[i].Name = s.metric
	}
	metrics.Read(samples)
	out := make([]InfoField, len(samples))
	for i, s := range samples {
		v := int64(0)
		if s.Value.Kind() == metrics.KindUint64 {
			v = int64(min(s.Value.Uint64(), math.MaxInt64))
		}
		out[i] = InfoField{goRuntimeSamples[i].field, v}
	}
	return out
}
