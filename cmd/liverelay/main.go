// Command liverelay serves the relay-task API and runs the relay tasks.
//
//	liverelay serve [flags]     run the service
//	liverelay iam <command>     manage projects, users and access keys
//	liverelay nodes             list the nodes of a cluster
//	liverelay version           print the version
//
// Every flag can also be set with an environment variable: --listen is
// LIVERELAY_LISTEN, --data-dir is LIVERELAY_DATA_DIR, and so on.
package main

import (
	"fmt"
	"os"
)

var version = "dev"

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "iam":
		err = iam(os.Args[2:], os.Stdout, os.Stderr)
	case "nodes":
		err = nodes(os.Args[2:], os.Stdout, os.Stderr)
	case "version":
		fmt.Println("liverelay", version)
	case "-h", "--help", "help":
		usage()
	default:
		fmt.Fprintf(os.Stderr, "liverelay: unknown command %q\n\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "liverelay:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprint(os.Stderr, `liverelay relays live streams and video files to RTMP destinations.

Usage:
  liverelay serve [flags]   run the service (liverelay serve -h lists the flags)
  liverelay iam <command>   manage projects, users and access keys (liverelay iam -h)
  liverelay nodes           list the nodes of a cluster on PostgreSQL (liverelay nodes -h)
  liverelay version         print the version
`)
}
