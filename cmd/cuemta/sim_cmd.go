package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/cuemta/cuemta/sim"
)

// runSim implements `cuemta sim [-c PATH] [-v] [-cert FILE]`: it runs the fake
// provider described by PATH until SIGINT or SIGTERM, then prints what it
// observed as JSON on stdout.
func runSim(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("c", "sim.cue", "sim config `PATH` (a .cue file or a directory)")
	verbose := fs.Bool("v", false, "log every connection and refusal to stderr")
	certFile := fs.String("cert", "", "write the STARTTLS and MTA-STS certificate (PEM) to `FILE`, for cuemta's delivery.tlsRoots")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: cuemta sim [-c PATH] [-v] [-cert FILE]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return 2
	}
	cfg, err := sim.Load(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	s, err := sim.New(cfg, sim.Options{
		Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})),
		Keep:   -1, // a long run must not hold every body; -v logs each message
	})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if err := s.Start(); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if *certFile != "" {
		if err := os.WriteFile(*certFile, s.CertPEM(), 0o644); err != nil {
			fmt.Fprintln(stderr, err)
			s.Close()
			return 1
		}
	}
	s.Describe(stdout)
	fmt.Fprintln(stderr, "cuemta sim: running; interrupt (Ctrl-C) to stop and print the statistics")

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	s.Close()

	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(s.Stats()); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}
