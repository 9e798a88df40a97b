// The sidecar's log lines (stderr: "date time logger LEVEL message", see pyserver/server/server.py) at their own
// level in the output channel, instead of all of stderr as errors. Lines without a level (a traceback's) keep the
// level of the line before them.

export type Level = "trace" | "debug" | "info" | "warn" | "error";

const LEVELS: Record<string, Level> = {
  DEBUG: "debug", INFO: "info", WARNING: "warn", ERROR: "error", CRITICAL: "error",
};
const LINE = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (\S+) (DEBUG|INFO|WARNING|ERROR|CRITICAL) (.*)$/;

export class LogLines {
  private partial = "";
  private level: Level = "info";

  constructor(private readonly sink: (level: Level, message: string) => void) {}

  /** Feed a chunk of stderr; complete lines go to the sink. */
  push(chunk: string): void {
    const lines = (this.partial + chunk).split("\n");
    this.partial = lines.pop() ?? "";
    for (const line of lines) {
      this.line(line.replace(/\r$/, ""));
    }
  }

  flush(): void {
    if (this.partial) {
      this.line(this.partial);
      this.partial = "";
    }
  }

  private line(line: string): void {
    if (!line.trim()) {
      return;
    }
    const m = LINE.exec(line);
    if (m) {
      this.level = LEVELS[m[2]];
      this.sink(this.level, `${m[1]}: ${m[3]}`);
    } else {
      this.sink(this.level, line);
    }
  }
}
