//! One test per definition of DESIGN.md §4, on hand-written strace lines.

use std::collections::BTreeMap;

use codegenie::strace::{parse_trace, ExitStatus, ParseOptions, TraceFacts};

fn parse(text: &str) -> TraceFacts {
    parse_trace(text.as_bytes(), &ParseOptions::default()).unwrap()
}

fn list(s: &std::collections::BTreeSet<String>) -> Vec<&str> {
    s.iter().map(String::as_str).collect()
}

#[test]
fn d1_unfinished_and_resumed_join_per_pid() {
    let f = parse(concat!(
        "10  openat(AT_FDCWD</app>, \"a.txt\", O_RDONLY <unfinished ...>\n",
        "11  openat(AT_FDCWD</app>, \"b.txt\", O_WRONLY|O_CREAT, 0666 <unfinished ...>\n",
        "10  <... openat resumed>) = 3</app/a.txt>\n",
        "11  <... openat resumed>) = 4</app/b.txt>\n",
        "12  <... openat resumed>) = 4</app/c.txt>\n",
    ));
    assert_eq!(list(&f.trace.files_read), ["/app/a.txt"]);
    assert_eq!(list(&f.trace.files_written), ["/app/b.txt"]);
    assert_eq!(f.malformed_lines, 1, "a resumption with nothing pending");
}

#[test]
fn d1_exit_and_signal_lines_are_not_calls_and_the_root_is_kept() {
    let f = parse(concat!(
        "[pid 7] 10:00:00.000001 execve(\"/bin/app\", [\"app\"], 0x1 /* 1 var */) = 0\n",
        "[pid 8] 10:00:00.000002 --- SIGTERM {si_signo=SIGTERM} ---\n",
        "[pid 7] 10:00:00.000003 --- SIGTERM {si_signo=SIGTERM, si_code=SI_USER} ---\n",
        "[pid 7] 10:00:00.000004 --- stopped by SIGSTOP ---\n",
        "[pid 8] 10:00:00.000005 +++ exited with 0 +++\n",
        "[pid 7] 10:00:00.000006 +++ killed by SIGSEGV (core dumped) +++\n",
        "hello from the app\n",
        "+++ exited with what +++\n",
    ));
    assert_eq!(f.root_signals, ["SIGTERM"]);
    assert_eq!(
        f.root_exit,
        Some(ExitStatus::Killed {
            signal: "SIGSEGV".into(),
            core_dumped: true
        })
    );
    assert_eq!(f.malformed_lines, 2);
}

#[test]
fn d2_literals_decode_and_render_invalid_utf8() {
    let f = parse("1 open(\"/data/caf\\303\\251 \\xff\\t\\\"q\\\"\", O_RDONLY) = 3\n");
    assert_eq!(list(&f.trace.files_read), ["/data/café \\xff\t\"q\""]);
}

#[test]
fn d3_d4_success_and_canonical_paths() {
    let f = parse(concat!(
        "1 openat(AT_FDCWD, \"/etc/missing\", O_RDONLY) = -1 ENOENT (No such file or directory)\n",
        "1 openat(AT_FDCWD</srv>, \"rel/x\", O_RDONLY) = 3\n",
        "1 openat(AT_FDCWD</srv/>, \"y\", O_RDONLY) = 3\n",
        "1 openat(5</opt/d>, \"z\", O_RDONLY) = 6\n",
        "1 openat(AT_FDCWD</srv>, \"link\", O_RDONLY) = 3</srv/target>\n",
        "1 openat(AT_FDCWD, \"plain\", O_RDONLY) = 3\n",
        "1 openat2(AT_FDCWD</srv>, \"o2\", {flags=O_RDONLY|O_CLOEXEC, resolve=RESOLVE_NO_SYMLINKS}, 24) = 3\n",
        "1 open(\"/abs\", O_RDONLY|O_CLOEXEC) = 3\n",
    ));
    assert_eq!(
        list(&f.trace.files_read),
        [
            "/abs",
            "/opt/d/z",
            "/srv/o2",
            "/srv/rel/x",
            "/srv/target",
            "/srv/y",
            "plain"
        ]
    );
}

#[test]
fn d5_read_write_modes_and_exclusions() {
    let f = parse(concat!(
        "1 openat(AT_FDCWD, \"/r\", O_RDONLY) = 3\n",
        "1 openat(AT_FDCWD, \"/w\", O_WRONLY|O_TRUNC) = 3\n",
        "1 openat(AT_FDCWD, \"/rw\", O_RDWR) = 3\n",
        "1 openat(AT_FDCWD, \"/c\", O_RDONLY|O_CREAT, 0600) = 3\n",
        "1 openat(AT_FDCWD, \"/n\", 0x241) = 3\n",
        "1 openat(AT_FDCWD, \"/d\", O_RDONLY|O_DIRECTORY) = 3\n",
        "1 openat(AT_FDCWD, \"/proc/self/status\", O_RDONLY) = 3\n",
        "1 openat(AT_FDCWD, \"/dev/null\", O_WRONLY) = 3\n",
        "1 openat(AT_FDCWD, \"/sys\", O_RDONLY) = 3\n",
        "1 openat(AT_FDCWD, \"/devices\", O_RDONLY) = 3\n",
    ));
    assert_eq!(list(&f.trace.files_read), ["/c", "/devices", "/r", "/rw"]);
    assert_eq!(list(&f.trace.files_written), ["/c", "/n", "/rw", "/w"]);
}

#[test]
fn d6_certificates() {
    let f = parse(concat!(
        "1 openat(AT_FDCWD, \"/etc/ssl/certs/ca-certificates.crt\", O_RDONLY) = 3\n",
        "1 openat(AT_FDCWD, \"/etc/ssl/openssl.cnf\", O_RDONLY) = 3\n",
        "1 openat(AT_FDCWD, \"/etc/pki/tls/certs/x\", O_RDONLY) = 3\n",
        "1 openat(AT_FDCWD, \"/app/key.PEM\", O_RDONLY) = 3\n",
        "1 openat(AT_FDCWD, \"/app/out.pem\", O_WRONLY|O_CREAT, 0600) = 3\n",
    ));
    assert_eq!(
        list(&f.trace.cert_paths_read),
        [
            "/app/key.PEM",
            "/etc/pki/tls/certs/x",
            "/etc/ssl/certs/ca-certificates.crt"
        ]
    );
}

#[test]
fn d7_exec_mappings_through_decorations_and_inherited_fd_tables() {
    let f = parse(concat!(
        "1 openat(AT_FDCWD, \"/lib/libA.so\", O_RDONLY|O_CLOEXEC) = 3\n",
        "1 mmap(NULL, 8192, PROT_READ|PROT_EXEC, MAP_PRIVATE, 3, 0) = 0x7f0000000000\n",
        "1 openat(AT_FDCWD, \"/lib/libB.so\", O_RDONLY) = 4\n",
        "1 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|SIGCHLD, child_tidptr=0x1) = 2\n",
        "1 clone(child_stack=0x1, flags=CLONE_VM|CLONE_FILES|CLONE_THREAD) = 3\n",
        "2 mmap(NULL, 8192, PROT_READ|PROT_EXEC, MAP_PRIVATE, 4, 0) = 0x7f0000001000\n",
        "1 openat(AT_FDCWD, \"/lib/libC.so\", O_RDONLY) = 5\n",
        "3 mmap(NULL, 8192, PROT_EXEC, MAP_PRIVATE, 5, 0) = 0x7f0000002000\n",
        "2 mmap(NULL, 8192, PROT_EXEC, MAP_PRIVATE, 5, 0) = 0x7f0000003000\n",
        "1 mmap(NULL, 8192, PROT_READ, MAP_PRIVATE, 4, 0) = 0x7f0000004000\n",
        "1 mmap(NULL, 8192, PROT_READ|PROT_EXEC, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000005000\n",
        "1 mmap(NULL, 8192, PROT_READ|PROT_EXEC, MAP_PRIVATE, 9</usr/lib/libD.so.1>, 0) = 0x7f0000006000\n",
        "1 mmap(NULL, 8192, 0x5, MAP_PRIVATE, 99, 0) = 0x7f0000007000\n",
    ));
    // libC: the CLONE_FILES thread shares the table; the forked child's copy
    // predates the open. fd 99 is unknown.
    assert_eq!(
        list(&f.trace.shared_libs_loaded),
        [
            "/lib/libA.so",
            "/lib/libB.so",
            "/lib/libC.so",
            "/usr/lib/libD.so.1"
        ]
    );
}

#[test]
fn d7_a_child_speaking_before_its_clone_returns_inherits() {
    let f = parse(concat!(
        "1 openat(AT_FDCWD, \"/lib/libA.so\", O_RDONLY) = 3\n",
        "1 clone(child_stack=NULL, flags=SIGCHLD <unfinished ...>\n",
        "2 mmap(NULL, 8192, PROT_READ|PROT_EXEC, MAP_PRIVATE, 3, 0) = 0x7f0000000000\n",
        "1 <... clone resumed>, child_tidptr=0x1) = 2\n",
    ));
    assert_eq!(list(&f.trace.shared_libs_loaded), ["/lib/libA.so"]);
}

#[test]
fn d8_d9_execs_proc_self_exe_and_shells() {
    let f = parse(concat!(
        "1 execve(\"/bin/busybox\", [\"sh\", \"-c\", \"x\"], 0x1 /* 2 vars */) = 0\n",
        "1 clone(child_stack=NULL, flags=SIGCHLD) = 2\n",
        "2 execve(\"/proc/self/exe\", [\"ash\", \"-c\"], 0x1 /* 2 vars */) = 0\n",
        "1 vfork() = 3\n",
        "3 execve(\"/proc/self/exe\", [\"cat\", \"f\"], 0x1 /* 2 vars */) = 0\n",
        "1 fork() = 4\n",
        "4 execve(\"/usr/bin/bash\", [\"-bash\"], 0x1 /* 2 vars */) = 0\n",
        "4 execve(\"/usr/bin/dash\", [\"dash\"], 0x1 /* 2 vars */) = -1 ENOENT (No such file or directory)\n",
        "4 execveat(3</usr/bin>, \"zsh\", [\"zsh\"], 0x1, 0) = 0\n",
        "4 execveat(7</opt/tool>, \"\", [\"tool\"], 0x1, AT_EMPTY_PATH) = 0\n",
        "5 execve(\"/proc/self/exe\", [\"sh\"], 0x1 /* 2 vars */) = 0\n",
        "6 execve(\"/usr/local/bin/mksh\", [\"busybox\"], 0x1 /* 2 vars */) = 0\n",
    ));
    assert_eq!(
        list(&f.trace.binaries_executed),
        [
            "/bin/busybox",
            "/opt/tool",
            "/proc/self/exe",
            "/usr/bin/bash",
            "/usr/bin/zsh",
            "/usr/local/bin/mksh"
        ]
    );
    // busybox as sh, /proc/self/exe as ash, bash, zsh, the unknown
    // process's /proc/self/exe as sh, mksh (its own name, not argv[0]).
    assert_eq!(f.trace.shell_invocations, 6);
}

#[test]
fn d8_script_interpreters_change_what_proc_self_exe_names() {
    let text = concat!(
        "1 execve(\"/entry.sh\", [\"/entry.sh\"], 0x1 /* 2 vars */) = 0\n",
        "1 clone(child_stack=NULL, flags=SIGCHLD) = 2\n",
        "2 execve(\"/proc/self/exe\", [\"sleep\", \"1\"], 0x1 /* 2 vars */) = 0\n",
    );
    let plain = parse(text);
    assert_eq!(list(&plain.trace.binaries_executed), ["/entry.sh"]);
    let interpreters: BTreeMap<String, String> = [
        ("/entry.sh".to_owned(), "/bin/busybox".to_owned()),
        (
            "/bin/busybox".to_owned(),
            "/lib/ld-musl-x86_64.so.1".to_owned(),
        ),
    ]
    .into();
    let f = parse_trace(text.as_bytes(), &ParseOptions { interpreters }).unwrap();
    assert_eq!(
        list(&f.trace.binaries_executed),
        ["/bin/busybox", "/entry.sh"]
    );
    assert_eq!(f.script_shell_invocations, 0, "busybox is not a shell name");
}

#[test]
fn d10_sockets() {
    let f = parse(concat!(
        "1 connect(3<socket:[1]>, {sa_family=AF_INET, sin_port=htons(5432), sin_addr=inet_addr(\"127.0.0.1\")}, 16) = -1 ENETUNREACH (Network is unreachable)\n",
        "1 connect(3, {sa_family=AF_INET6, sin6_port=htons(443), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, \"::1\", &sin6_addr), sin6_scope_id=0}, 28) = 0\n",
        "1 bind(4<TCP:[9]>, {sa_family=AF_INET, sin_port=htons(0), sin_addr=inet_addr(\"127.0.0.1\")}, 16) = 0\n",
        "1 bind(4<TCP:[127.0.0.1:3000->127.0.0.1:0]>, {sa_family=AF_INET, sin_port=htons(3000), sin_addr=inet_addr(\"127.0.0.1\")}, 16) = -1 EADDRINUSE (Address in use)\n",
        "1 bind(5, {sa_family=AF_INET6, sin6_port=htons(8080), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, \"::1\", &sin6_addr), sin6_scope_id=0}, 28) = 0\n",
        "1 connect(6, {sa_family=AF_UNIX, sun_path=\"/run/db.sock\"}, 110) = 0\n",
        "1 bind(7, {sa_family=AF_UNIX, sun_path=@\"abs\"}, 6) = 0\n",
        "1 connect(8, {sa_family=AF_NETLINK, nl_pid=0, nl_groups=00000000}, 12) = 0\n",
    ));
    let n = &f.trace.network_endpoints_touched;
    assert_eq!(list(&n.outbound), ["127.0.0.1:5432", "[::1]:443"]);
    assert_eq!(list(&n.inbound), ["127.0.0.1:3000", "[::1]:8080"]);
    assert_eq!(list(&f.trace.unix_sockets), ["/run/db.sock", "@abs"]);
    assert_eq!(f.malformed_lines, 0);
}

#[test]
fn stderr_output_learns_the_root_pid() {
    let f = parse(concat!(
        "execve(\"/bin/sh\", [\"sh\"], 0x1 /* 1 var */) = 0\n",
        "openat(AT_FDCWD, \"/lib/libc.so\", O_RDONLY) = 3\n",
        "vfork(strace: Process 20 attached\n",
        " <unfinished ...>\n",
        "[pid    20] mmap(NULL, 1, PROT_EXEC, MAP_PRIVATE, 3, 0) = 0x1000\n",
        "[pid    19] <... vfork resumed>) = 20\n",
        "[pid    20] +++ exited with 0 +++\n",
        "--- SIGCHLD {si_signo=SIGCHLD} ---\n",
        "exit_group(0) = ?\n",
        "+++ exited with 4 +++\n",
    ));
    assert_eq!(list(&f.trace.shared_libs_loaded), ["/lib/libc.so"]);
    assert_eq!(f.root_signals, ["SIGCHLD"]);
    assert_eq!(f.root_exit, Some(ExitStatus::Exited { code: 4 }));
    assert_eq!(f.malformed_lines, 0);
}

#[test]
fn foreign_lines_on_stderr_do_not_become_processes() {
    let f = parse(concat!(
        "execve(\"/bin/sh\", [\"sh\"], 0x1 /* 1 var */) = 0\n",
        "42 bottles of output\n",
        "vfork(strace: Process 20 attached\n",
        " <unfinished ...>\n",
        "[pid    19] <... vfork resumed>) = 20\n",
        "[pid    20] +++ exited with 0 +++\n",
        "+++ exited with 5 +++\n",
    ));
    assert_eq!(f.root_exit, Some(ExitStatus::Exited { code: 5 }));
    assert_eq!(f.malformed_lines, 1);
}
