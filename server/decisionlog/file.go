package decisionlog

import (
	"errors"
	"io"
	"os"

	"gopkg.in/natefinch/lumberjack.v2"
)

// Stdout is the path that sends the log to standard output.
const Stdout = "-"

// OpenSink opens the log's destination: stdout for Stdout, else a file
// rotated when it reaches maxSizeMB, keeping maxBackups old files.
func OpenSink(path string, maxSizeMB, maxBackups int) (io.Writer, error) {
	if path == Stdout {
		return struct{ io.Writer }{os.Stdout}, nil // Close must not close stdout
	}
	if maxSizeMB < 1 {
		return nil, errors.New("decision log max size must be at least 1 MB")
	}
	f := &lumberjack.Logger{Filename: path, MaxSize: maxSizeMB, MaxBackups: maxBackups}
	// Open now so a bad path fails at startup rather than on the first
	// decision.
	if _, err := f.Write(nil); err != nil {
		return nil, err
	}
	return f, nil
}
