// compose-check loads compose files the way `docker compose` does (the
// compose-spec reference loader, compose-go), validating them against the
// Compose JSON schema and checking references between services, volumes and
// networks. It exits 1 on any error, e.g. a misspelt key. It never contacts a
// container engine or registry.
//
//	go run ./scripts/compose-check compose.yaml   (from scripts/compose-check: go run . ../../compose.yaml)
package main

import (
	"context"
	"fmt"
	"os"
	"sort"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: compose-check FILE...")
		os.Exit(2)
	}
	opts, err := cli.NewProjectOptions(os.Args[1:], cli.WithOsEnv, cli.WithInterpolation(true))
	if err != nil {
		fmt.Fprintln(os.Stderr, "compose-check:", err)
		os.Exit(1)
	}
	project, err := opts.LoadProject(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, "compose-check:", err)
		os.Exit(1)
	}
	names := project.ServiceNames()
	sort.Strings(names)
	fmt.Printf("compose-check: %s valid: project %q, %d services %v\n", os.Args[1:], project.Name, len(names), names)
}
