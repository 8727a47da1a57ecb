package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/cuemta/cuemta/engine"
)

// runServe implements `cuemta serve [-c PATH]`: load and validate the
// config (the embedded default without -c), run until SIGTERM or SIGINT,
// then shut down cleanly.
func runServe(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("c", "", "config `PATH`: a directory holding a CUE package, or a .cue file (default: embedded)")
	logJSON := fs.Bool("log-json", false, "write the process log as JSON")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile to `FILE` until the server stops (for performance work)")
	logLevel := fs.String("log-level", "info", "process log `level`: debug (a line per message and delivery), info, warn or error")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "cuemta serve: -log-level: %v\n", err)
		return 2
	}
	opts := &slog.HandlerOptions{Level: level}
	var handler slog.Handler = slog.NewTextHandler(stderr, opts)
	if *logJSON {
		handler = slog.NewJSONHandler(stderr, opts)
	}
	logger := slog.New(handler)

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "cuemta serve: -cpuprofile: %v\n", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "cuemta serve: -cpuprofile: %v\n", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}

	snap, err := engine.Load(*path)
	if err != nil {
		for _, l := range engine.ErrorLines(err) {
			fmt.Fprintln(stderr, l)
		}
		return 1
	}
	srv, err := engine.NewServer(*path, snap, logger)
	if err != nil {
		logger.Error("cannot start", "err", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	// SIGHUP reloads the config; a bad one is refused and logged.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-hup:
				srv.Reload(ctx, "sighup")
			case <-ctx.Done():
				return
			}
		}
	}()
	if err := srv.Run(ctx); err != nil {
		logger.Error("stopped with an error", "err", err)
		return 1
	}
	return 0
}
