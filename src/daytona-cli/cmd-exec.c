/* SPDX-License-Identifier: Apache-2.0 */
/* `daytona exec` and `daytona ssh`: running commands in a sandbox. exec runs the command
 * asynchronously in a throwaway session and follows its log WebSocket, so output appears as it
 * is produced and the CLI exits with the command's status. ssh is an interactive terminal over
 * the PTY WebSocket: the local terminal in raw mode (restored on every way out), keystrokes
 * forwarded, SIGWINCH turned into a resize, and the remote shell's exit status passed back. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "daytona-cli/cli.h"
#include "daytona/daytona.h"
#include "dt/banned.h"
#include "dt/fd-util.h"
#include "dt/xalloc.h"

/* ---- exec ---- */

/* Quote S for a POSIX shell: 'it'\''s'. Returns a new string. */
static char *
shell_quote(const char *s)
{
    bool plain = *s != '\0';
    for (const char *p = s; *p; p++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%", *p))
            plain = false;
    if (plain)
        return xstrdup(s);
    size_t n = 3;
    for (const char *p = s; *p; p++)
        n += *p == '\'' ? 4 : 1;
    char *out = xmalloc(n), *o = out;
    *o++ = '\'';
    for (const char *p = s; *p; p++) {
        if (*p == '\'') {
            memcpy(o, "'\\''", 4);
            o += 4;
        } else
            *o++ = *p;
    }
    *o++ = '\'';
    *o = '\0';
    return out;
}

/* One argument is taken as a shell command line as is (`daytona exec sb -- 'ls | wc -l'`);
 * several are quoted word by word, so `daytona exec sb -- printf '%s\n' "a b"` keeps its words. */
static char *
build_command(int argc, char **argv)
{
    if (argc == 1)
        return xstrdup(argv[0]);
    char *cmd = xstrdup("");
    for (int i = 0; i < argc; i++) {
        _cleanup_free_ char *q = shell_quote(argv[i]);
        char *n = xasprintf("%s%s%s", cmd, i ? " " : "", q);
        free(cmd);
        cmd = n;
    }
    return cmd;
}

static int
out_stdout(const char *data, size_t len, void *userdata)
{
    return write_all(STDOUT_FILENO, data, len);
}

static int
out_stderr(const char *data, size_t len, void *userdata)
{
    return write_all(STDERR_FILENO, data, len);
}

/* If the CLI dies before the command ends (Ctrl-C, a kill), the command would go on running in
 * the sandbox. A watchdog process deletes the session (and with it the command) in that case:
 * it is this binary re-executed as the hidden `__session-reaper`, reading a pipe whose write
 * end only we hold. A "d" on the pipe means "finished normally, nothing to do"; EOF without it
 * means we are gone. It ignores the terminal's signals, which reach the whole process group. */
static pid_t
start_session_reaper(const char *sandbox, const char *session, int *ret_fd)
{
    int p[2];
    pid_t pid;

    if (pipe2(p, O_CLOEXEC) < 0)
        return -errno;
    pid = fork();
    if (pid < 0) {
        int r = -errno;
        safe_close(p[0]);
        safe_close(p[1]);
        return r;
    }
    if (pid == 0) {
        /* Only async-signal-safe calls until exec. dup2 clears O_CLOEXEC on the copies. */
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (dup2(p[0], STDIN_FILENO) < 0 || null < 0 || dup2(null, STDOUT_FILENO) < 0 ||
            dup2(null, STDERR_FILENO) < 0)
            _exit(127);
        signal(SIGINT, SIG_IGN);
        signal(SIGQUIT, SIG_IGN);
        signal(SIGHUP, SIG_IGN);
        signal(SIGTERM, SIG_IGN);
        signal(SIGPIPE, SIG_IGN);
        if (cli_profile)
            execl("/proc/self/exe", "daytona", "--profile", cli_profile, "__session-reaper",
                  sandbox, session, (char *) NULL);
        else
            execl("/proc/self/exe", "daytona", "__session-reaper", sandbox, session,
                  (char *) NULL);
        _exit(127);
    }
    safe_close(p[0]);
    *ret_fd = p[1];
    return pid;
}

/* Tell the reaper all is well and reap it. */
static void
stop_session_reaper(pid_t pid, int fd)
{
    if (pid <= 0)
        return;
    (void) write_all(fd, "d", 1);
    safe_close(fd);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
}

static int
run_session_reaper(struct cli_args *a)
{
    char b;
    ssize_t n;
    daytona_client *c = NULL;

    do
        n = read(STDIN_FILENO, &b, 1);
    while (n < 0 && errno == EINTR);
    if (n == 1)
        return 0;
    if (cli_client_open(&c) != 0)
        return 1;
    (void) daytona_session_delete(c, a->argv[0], a->argv[1], NULL);
    daytona_client_free(c);
    return 0;
}

const struct cli_command cli_cmd_session_reaper = {
    .name = "__session-reaper",
    .args_usage = "SANDBOX SESSION",
    .summary = "delete SESSION when stdin reaches EOF without a 'd' (used by exec)",
    .min_args = 2,
    .max_args = 2,
    .flags = CLI_CMD_HIDDEN,
    .run = run_session_reaper,
};

static int
run_exec(struct cli_args *a)
{
    const char *sandbox = a->argv[0];
    const char *cwd = cli_opt(a, "cwd");
    uint64_t timeout = 0;
    _cleanup_free_ char *cmd = NULL, *full = NULL, *session = NULL;
    struct daytona_session_exec_result res = {};
    daytona_client *c = NULL;
    daytona_error *e = NULL;
    int r, code = -1, reaper_fd = -EBADF;
    pid_t reaper;
    bool streamed = true;

    if (cli_opt_u64(a, "timeout", &timeout) < 0)
        return CLI_EXIT_USAGE;
    if (a->argc < 2)
        return cli_usage_error(a, "missing command: daytona exec SANDBOX -- COMMAND [ARGS...]");
    cmd = build_command(a->argc - 1, a->argv + 1);
    /* The session's shell runs our line; a subshell keeps its cd and exit from leaking into the
     * session, and coreutils' timeout bounds it (status 124, as timeout(1) documents). */
    _cleanup_free_ char *qcwd = cwd ? shell_quote(cwd) : NULL;
    _cleanup_free_ char *inner = cwd ? xasprintf("cd %s && %s", qcwd, cmd) : xstrdup(cmd);
    _cleanup_free_ char *qinner = shell_quote(inner);
    if (timeout > 0)
        full = xasprintf("timeout %llu sh -c %s", (unsigned long long) timeout, qinner);
    else
        full = xasprintf("(%s)", inner);

    r = cli_client_open(&c);
    if (r)
        return r;

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    session = xasprintf("daytona-cli-exec-%d-%ld", (int) getpid(), (long) ts.tv_nsec);
    r = daytona_session_create(c, sandbox, session, &e);
    if (r < 0) {
        daytona_client_free(c);
        return cli_fail(r, e, "create session");
    }
    reaper = start_session_reaper(sandbox, session, &reaper_fd);
    if (reaper < 0) {
        (void) daytona_session_delete(c, sandbox, session, NULL);
        daytona_client_free(c);
        return cli_error("start watchdog: %s", strerror((int) -reaper));
    }
    r = daytona_session_exec(c, sandbox, session, full, /* run_async= */ true, 0, &res, &e);
    if (r < 0) {
        (void) daytona_session_delete(c, sandbox, session, NULL);
        stop_session_reaper(reaper, reaper_fd);
        daytona_client_free(c);
        return cli_fail(r, e, "execute command");
    }
    r = daytona_session_command_follow(c, sandbox, session, res.cmd_id, out_stdout, out_stderr,
                                       NULL, &e);
    if (r == -EOPNOTSUPP) {
        /* No streaming here: wait for the async command's end and print its logs. */
        daytona_error_free(e);
        e = NULL;
        r = 0;
        streamed = false;
    } else if (r < 0) {
        (void) daytona_session_delete(c, sandbox, session, NULL);
        stop_session_reaper(reaper, reaper_fd);
        daytona_session_exec_result_done(&res);
        daytona_client_free(c);
        return cli_fail(r, e, "follow command output");
    }

    /* The log stream closes when the command has exited; its status may take a moment to be
     * recorded, so poll briefly. Without the stream, poll until the command ends. */
    for (int i = 0; !streamed || i < 600; i++) {
        struct daytona_command *st = NULL;
        r = daytona_session_command_get(c, sandbox, session, res.cmd_id, &st, &e);
        if (r < 0)
            break;
        bool done = st->has_exit_code;
        code = st->exit_code;
        daytona_command_free(st);
        if (done)
            break;
        code = -1;
        (void) usleep(100 * 1000);
    }
    if (r >= 0 && !streamed) {
        _cleanup_free_ char *so = NULL, *se = NULL;
        r = daytona_session_command_logs(c, sandbox, session, res.cmd_id, &so, &se, &e);
        if (r >= 0) {
            (void) write_all(STDOUT_FILENO, so ? so : "", so ? strlen(so) : 0);
            (void) write_all(STDERR_FILENO, se ? se : "", se ? strlen(se) : 0);
        }
    }
    (void) daytona_session_delete(c, sandbox, session, NULL);
    stop_session_reaper(reaper, reaper_fd);
    daytona_session_exec_result_done(&res);
    daytona_client_free(c);
    if (r < 0)
        return cli_fail(r, e, "get command status");
    if (code < 0)
        return cli_error("command did not report an exit status");
    if (timeout > 0 && code == 124)
        cli_error("command timed out after %llu s", (unsigned long long) timeout);
    return code & 0xff;
}

static const struct cli_option exec_options[] = {
    {"cwd", 0, CLI_VALUE, "DIR", "working directory of the command"},
    {"timeout", 0, CLI_VALUE, "SECONDS", "kill the command after SECONDS (exit status 124)"},
    {},
};

const struct cli_command cli_cmd_exec = {
    .name = "exec",
    .args_usage = "SANDBOX -- COMMAND [ARGS...]",
    .summary = "run a command in a sandbox",
    .description =
            "Output is streamed as the command produces it (stdout and stderr kept apart) "
            "and the exit status is the command's. A single COMMAND argument is a shell "
            "command line; several are quoted word by word.",
    .example = "daytona exec demo -- ls -la /\n"
               "daytona exec demo --cwd /tmp --timeout 60 -- 'make test 2>&1 | tail'",
    .options = exec_options,
    .min_args = 1,
    .max_args = -1,
    .run = run_exec,
};

/* ---- ssh ---- */

static struct termios saved_termios;
static bool termios_saved;
static int winch_pipe[2] = {-EBADF, -EBADF};

static void
restore_terminal(void)
{
    if (termios_saved) {
        (void) tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_termios);
        termios_saved = false;
    }
}

/* Fatal signals: put the terminal back, then die of the same signal with the default action. */
static void
on_fatal_signal(int sig)
{
    if (termios_saved)
        (void) tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_termios);
    signal(sig, SIG_DFL);
    raise(sig);
}

static void
on_winch(int sig)
{
    int saved = errno;
    if (winch_pipe[1] >= 0)
        (void) write(winch_pipe[1], "w", 1);
    errno = saved;
}

static int
enter_raw_mode(void)
{
    struct termios raw;

    if (tcgetattr(STDIN_FILENO, &saved_termios) < 0)
        return -errno;
    termios_saved = true;
    raw = saved_termios;
    cfmakeraw(&raw);
    if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw) < 0)
        return -errno;
    return 0;
}

static void
terminal_size(unsigned *cols, unsigned *rows)
{
    struct winsize ws = {};
    *cols = 80;
    *rows = 24;
    if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0 || ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0) {
        if (ws.ws_col)
            *cols = ws.ws_col;
        if (ws.ws_row)
            *rows = ws.ws_row;
    }
}

static void
pty_output(const void *data, size_t len, void *userdata)
{
    (void) write_all(STDOUT_FILENO, data, len);
}

/* The interactive loop; returns the remote exit code (>= 0) or a negative errno with *err. */
static int
ssh_loop(daytona_pty *pty, bool stdin_tty, daytona_error **err)
{
    bool stdin_open = true;
    int r;

    for (;;) {
        struct pollfd fds[3] = {
                {.fd = daytona_pty_fd(pty), .events = POLLIN},
                {.fd = stdin_open ? STDIN_FILENO : -1, .events = POLLIN},
                {.fd = winch_pipe[0], .events = POLLIN},
        };
        r = poll(fds, ELEMENTSOF(fds), daytona_pty_pending(pty) ? 0 : -1);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (fds[0].revents || daytona_pty_pending(pty)) {
            r = daytona_pty_step(pty, pty_output, NULL, err);
            if (r < 0)
                return r;
            if (r == 0) {
                int code = 0;
                r = daytona_pty_exit_code(pty, &code, NULL);
                return r < 0 ? r : code;
            }
        }
        if (fds[1].revents) {
            char buf[4096];
            ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
            if (n < 0 && errno != EINTR && errno != EAGAIN)
                return -errno;
            if (n == 0) {
                /* Piped input ended: tell the remote shell with an EOT, as a terminal would
                 * (a terminal's stdin never reaches EOF in raw mode). */
                stdin_open = false;
                if (!stdin_tty)
                    (void) daytona_pty_write(pty, "\004", 1, NULL);
            } else if (n > 0) {
                r = daytona_pty_write(pty, buf, (size_t) n, err);
                if (r < 0)
                    return r;
            }
        }
        if (fds[2].revents) {
            char drain[64];
            unsigned cols, rows;
            while (read(winch_pipe[0], drain, sizeof(drain)) > 0)
                ;
            terminal_size(&cols, &rows);
            r = daytona_pty_resize(pty, cols, rows, err);
            if (r < 0)
                return r;
        }
    }
}

static int
run_ssh(struct cli_args *a)
{
    bool stdin_tty = isatty(STDIN_FILENO) == 1;
    daytona_client *c = NULL;
    daytona_pty *pty = NULL;
    daytona_error *e = NULL;
    _cleanup_free_ char *term_env = NULL;
    const char *env[2] = {};
    struct daytona_pty_params p = {.env = env};
    int r;

    term_env = xasprintf("TERM=%s",
                         getenv("TERM") && *getenv("TERM") ? getenv("TERM") : "xterm-256color");
    env[0] = term_env;
    terminal_size(&p.cols, &p.rows);

    r = cli_client_open(&c);
    if (r)
        return r;
    r = daytona_pty_create(c, a->argv[0], &p, &pty, &e);
    if (r < 0) {
        daytona_client_free(c);
        return cli_fail(r, e, "open terminal");
    }

    if (pipe2(winch_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
        r = -errno;
        daytona_pty_close(pty);
        daytona_client_free(c);
        return cli_error("create pipe: %s", strerror(-r));
    }
    struct sigaction sa = {.sa_handler = on_winch, .sa_flags = SA_RESTART};
    sigemptyset(&sa.sa_mask);
    (void) sigaction(SIGWINCH, &sa, NULL);
    struct sigaction fatal = {.sa_handler = on_fatal_signal};
    sigemptyset(&fatal.sa_mask);
    (void) sigaction(SIGTERM, &fatal, NULL);
    (void) sigaction(SIGHUP, &fatal, NULL);
    (void) sigaction(SIGQUIT, &fatal, NULL);
    (void) sigaction(SIGINT, &fatal, NULL);
    atexit(restore_terminal);

    if (stdin_tty && enter_raw_mode() < 0) {
        r = -errno;
        restore_terminal();
        daytona_pty_close(pty);
        daytona_client_free(c);
        return cli_error("set terminal to raw mode: %s", strerror(-r));
    }
    /* The size may have changed between the measure above and raw mode. */
    (void) on_winch(SIGWINCH);

    r = ssh_loop(pty, stdin_tty, &e);
    restore_terminal();
    signal(SIGWINCH, SIG_DFL);
    winch_pipe[0] = safe_close(winch_pipe[0]);
    winch_pipe[1] = safe_close(winch_pipe[1]);
    daytona_pty_close(pty);
    daytona_client_free(c);
    if (r < 0)
        return cli_fail(r, e, "terminal");
    return r & 0xff;
}

const struct cli_command cli_cmd_ssh = {
    .name = "ssh",
    .args_usage = "SANDBOX",
    .summary = "open an interactive terminal in a sandbox",
    .description =
            "Runs over the sandbox's PTY WebSocket (no SSH server is involved). The exit "
            "status is the remote shell's.",
    .example = "daytona ssh demo",
    .min_args = 1,
    .max_args = 1,
    .run = run_ssh,
};
