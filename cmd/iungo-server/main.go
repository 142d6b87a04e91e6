// Command iungo-server is the reference iungo server: the node API of
// docs/iungo-protocol.md, an admin API and a web UI, over an embedded
// SQLite file in --data. Secrets come from the environment or files, never
// from the command line, which every user of the machine can read (ps).
//
//	IUNGO_ADMIN_TOKEN=... iungo-server --listen 127.0.0.1:7379 --data ./iungo-data
//	iungo-server --admin-token-file /etc/iungo/admin-token --namespace example --import testdata/examples/iungo.manifest
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/valkey-iungo/valkey-iungo/iungo/server"
)

func main() {
	if err := run(context.Background(), os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "iungo-server:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("iungo-server", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:7379", "address to serve the API and the UI on")
	data := fs.String("data", "iungo-data", "directory of the SQLite database (created 0700; the database 0600)")
	adminTokenFile := fs.String("admin-token-file", "", "file holding the token of the admin API and the UI (default $IUNGO_ADMIN_TOKEN, or a random one, printed)")
	namespace := fs.String("namespace", "", "create this namespace at start if it does not exist")
	tokenFile := fs.String("token-file", "", "file holding the node token of --namespace when it is created (default $IUNGO_NODE_TOKEN, or random)")
	manifest := fs.String("import", "", "import this module manifest into --namespace when it has no script yet")
	pushUser := fs.String("push-user", "", "ACL user that pushes to --namespace's nodes authenticate as; its password is $IUNGO_PUSH_PASSWORD")
	maxNodes := fs.Int("max-nodes", server.DefaultMaxNodes, "nodes one namespace may register")
	metricsTokenFile := fs.String("metrics-token-file", "", "file holding a token that reads GET /metrics and nothing else (default $IUNGO_METRICS_TOKEN; without one, /metrics wants the admin token)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	adminToken, err := secret(*adminTokenFile, "IUNGO_ADMIN_TOKEN")
	if err != nil {
		return err
	}
	nodeToken, err := secret(*tokenFile, "IUNGO_NODE_TOKEN")
	if err != nil {
		return err
	}
	metricsToken, err := secret(*metricsTokenFile, "IUNGO_METRICS_TOKEN")
	if err != nil {
		return err
	}
	// The database, its journal and anything else written here are the
	// owner's only: they hold tokens and signing keys.
	syscall.Umask(0o077)
	store, err := server.OpenStore(*data)
	if err != nil {
		return err
	}
	defer store.Close()
	store.MaxNodes = *maxNodes
	if *namespace != "" {
		if err := prepareNamespace(store, *namespace, nodeToken, *manifest); err != nil {
			return err
		}
		if *pushUser != "" {
			if err := store.SetPushCredentials(*namespace, *pushUser, os.Getenv("IUNGO_PUSH_PASSWORD")); err != nil {
				return err
			}
		}
	}
	if adminToken == "" {
		adminToken = server.NewToken()
		fmt.Printf("admin token: %s\n", adminToken)
	}
	srv := server.New(store, adminToken)
	srv.MetricsToken = metricsToken
	srv.Log = log.New(os.Stderr, "", log.LstdFlags)
	if err := srv.Open(*listen); err != nil {
		return err
	}
	defer srv.Close()
	fmt.Printf("iungo-server: API and UI on %s (data in %s)\n", srv.URL(), *data)
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	return nil
}

// secret reads a secret from a file (trailing newline dropped) or else
// from an environment variable.
func secret(file, env string) (string, error) {
	if file == "" {
		return os.Getenv(env), nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// prepareNamespace creates the namespace if needed and imports a manifest
// into it while it has no script, published or in its draft.
func prepareNamespace(store *server.Store, name, token, manifest string) error {
	ns, err := store.Namespace(name)
	if errors.Is(err, server.ErrNotFound) {
		ns, err = store.CreateNamespace(name, token)
	}
	if err != nil {
		return err
	}
	fmt.Printf("namespace %s: node token %s, public key %s\n", ns.Name, ns.Token, ns.PublicKey())
	if manifest == "" {
		return nil
	}
	d, err := store.Draft(name)
	if err != nil || len(d.Content.Scripts) > 0 || d.Pending {
		return err // scripts, published or drafted, are someone's work
	}
	if err := store.ImportManifest(name, manifest); err != nil {
		return fmt.Errorf("importing %s: %w", manifest, err)
	}
	fmt.Printf("namespace %s: imported %s\n", name, manifest)
	return nil
}
