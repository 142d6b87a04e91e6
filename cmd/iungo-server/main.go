// Command iungo-server is the reference iungo server: the node API of
// docs/iungo-protocol.md, an admin API and a web UI, over an embedded
// SQLite file in --data.
//
//	iungo-server --listen 127.0.0.1:7379 --data ./iungo-data
//	iungo-server --namespace example --token secret --import testdata/examples/iungo.manifest
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
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
	data := fs.String("data", "iungo-data", "directory of the SQLite database")
	adminToken := fs.String("admin-token", os.Getenv("IUNGO_ADMIN_TOKEN"), "token of the admin API and the UI (default $IUNGO_ADMIN_TOKEN, or a random one, printed)")
	namespace := fs.String("namespace", "", "create this namespace at start if it does not exist")
	token := fs.String("token", "", "node token of --namespace when it is created (random if empty)")
	manifest := fs.String("import", "", "import this module manifest into --namespace when it has no script yet")
	nodeUser := fs.String("node-user", "", "ACL user for pushing IUNGO SYNC to the nodes")
	nodePassword := fs.String("node-password", os.Getenv("IUNGO_NODE_PASSWORD"), "password for --node-user (default $IUNGO_NODE_PASSWORD)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	store, err := server.OpenStore(*data)
	if err != nil {
		return err
	}
	defer store.Close()
	if *namespace != "" {
		if err := prepareNamespace(store, *namespace, *token, *manifest); err != nil {
			return err
		}
	}
	if *adminToken == "" {
		*adminToken = server.NewToken()
		fmt.Printf("admin token: %s\n", *adminToken)
	}
	srv := server.New(store, *adminToken)
	srv.NodeUser, srv.NodePassword = *nodeUser, *nodePassword
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

// prepareNamespace creates the namespace if needed and imports a manifest
// into it while it has no script.
func prepareNamespace(store *server.Store, name, token, manifest string) error {
	ns, err := store.Namespace(name)
	if errors.Is(err, server.ErrNotFound) {
		ns, err = store.CreateNamespace(name, token)
	}
	if err != nil {
		return err
	}
	fmt.Printf("namespace %s: node token %s\n", ns.Name, ns.Token)
	if manifest == "" {
		return nil
	}
	sn, err := store.Snapshot(name)
	if err != nil || len(sn.Scripts) > 0 {
		return err
	}
	if err := store.ImportManifest(name, manifest); err != nil {
		return fmt.Errorf("importing %s: %w", manifest, err)
	}
	fmt.Printf("namespace %s: imported %s\n", name, manifest)
	return nil
}
