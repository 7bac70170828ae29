//! One test per definition of the parser contract (docs/architecture.md
//! "Parser"), on hand-written strace lines.

use std::collections::BTreeMap;

use codegenie::strace::{parse_trace, ExitStatus, ParseOptions, ParsedTrace, TraceFacts};

fn parse(text: &str) -> TraceFacts {
    parse_trace(text.as_bytes(), &ParseOptions::default()).unwrap()
}

fn parse_with(text: &str, interpreters: &[(&str, &str)]) -> TraceFacts {
    let interpreters = interpreters
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    parse_trace(
        text.as_bytes(),
        &ParseOptions {
            interpreters,
            ..Default::default()
        },
    )
    .unwrap()
}

fn list(s: &std::collections::BTreeSet<String>) -> Vec<&str> {
    s.iter().map(String::as_str).collect()
}

fn pairs(m: &BTreeMap<String, String>) -> Vec<(&str, &str)> {
    m.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
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
fn d3_d4_success_and_paths_as_opened() {
    let f = parse(concat!(
        "1 openat(AT_FDCWD, \"/etc/missing\", O_RDONLY) = -1 ENOENT (No such file or directory)\n",
        "1 openat(AT_FDCWD</srv>, \"rel/x\", O_RDONLY) = 3\n",
        "1 openat(AT_FDCWD</srv/>, \"y\", O_RDONLY) = 3\n",
        "1 openat(5</opt/d>, \"z\", O_RDONLY) = 6\n",
        "1 openat(AT_FDCWD</srv>, \"link\", O_RDONLY) = 3</srv/target>\n",
        "1 openat(AT_FDCWD</srv>, \"./a/../b//c/.\", O_RDONLY) = 3</srv/b/c>\n",
        "1 openat2(AT_FDCWD</srv>, \"o2\", {flags=O_RDONLY|O_CLOEXEC, resolve=RESOLVE_NO_SYMLINKS}, 24) = 3\n",
        "1 open(\"/abs/../abs2\", O_RDONLY|O_CLOEXEC) = 3\n",
        "1 open(\"rel2\", O_RDONLY) = 3</srv/rel2>\n",
        "1 openat(AT_FDCWD</srv>, \"/lib/libz.so.1\", O_RDONLY|O_CLOEXEC) = 3</usr/lib/libz.so.1.2.13>\n",
        "2 openat(AT_FDCWD, \"plain\", O_RDONLY) = 3\n",
        "2 openat(AT_FDCWD, \"./../up\", O_RDONLY) = 3\n",
    ));
    // Relative names are joined to the dirfd's decoration, or to the cwd the
    // process showed (`open` has no dirfd); pid 2 never showed one.
    assert_eq!(
        list(&f.trace.files_read),
        [
            "../up",
            "/abs2",
            "/lib/libz.so.1",
            "/opt/d/z",
            "/srv/b/c",
            "/srv/link",
            "/srv/o2",
            "/srv/rel/x",
            "/srv/rel2",
            "/srv/y",
            "plain"
        ]
    );
    // The name the app used stays; the kernel's name is recorded beside it.
    assert_eq!(
        pairs(&f.trace.resolved),
        [
            ("/lib/libz.so.1", "/usr/lib/libz.so.1.2.13"),
            ("/srv/link", "/srv/target")
        ]
    );
    assert_eq!(f.malformed_lines, 0);
}

#[test]
fn d4_the_cwd_is_forgotten_at_exec_and_inherited_on_fork() {
    let f = parse(concat!(
        "1 newfstatat(AT_FDCWD</old>, \".\", {st_mode=S_IFDIR|0755, st_size=4096, ...}, 0) = 0\n",
        "1 execve(\"/usr/bin/tool\", [\"tool\"], 0x1 /* 1 var */) = 0\n",
        // The shell may have changed directory since /old showed.
        "1 open(\"early\", O_RDONLY) = 3\n",
        "1 newfstatat(AT_FDCWD</new>, \"x\", {st_mode=S_IFREG|0644, st_size=1, ...}, 0) = 0\n",
        "1 open(\"config\", O_RDONLY) = 3\n",
        "1 clone(child_stack=NULL, flags=SIGCHLD) = 2\n",
        "2 access(\"data\", R_OK) = 0\n",
        "2 execveat(AT_FDCWD</new>, \"sub/run\", [\"run\"], 0x1 /* 1 var */, 0) = 0\n",
        "2 readlink(\"link\", \"t\", 4096) = 1\n",
    ));
    assert_eq!(list(&f.trace.files_read), ["/new/config", "early"]);
    // execveat's own decoration shows the cwd at the exec.
    assert_eq!(
        list(&f.trace.paths_probed),
        ["/new/data", "/new/link", "/new/x", "/old"]
    );
    assert_eq!(
        list(&f.trace.binaries_executed),
        ["/new/sub/run", "/usr/bin/tool"]
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
fn d5_exclusions_apply_to_either_name() {
    let f = parse(concat!(
        "1 openat(AT_FDCWD</app>, \"out\", O_WRONLY) = 3</dev/null>\n",
        "1 openat(AT_FDCWD</app>, \"/dev/stdin\", O_RDONLY) = 0<pipe:[12]>\n",
        "1 open(\"/app/sock\", O_RDWR) = 4<socket:[99]>\n",
        "1 openat(AT_FDCWD</app>, \"/tmp\", O_RDWR|O_TMPFILE, 0600) = 3</tmp/#1234 (deleted)>\n",
        "1 openat(AT_FDCWD</app>, \"/app/gone\", O_RDONLY) = 3</app/gone (deleted)>\n",
        "1 openat(AT_FDCWD</app>, \"/lib\", O_RDONLY|O_DIRECTORY) = 3</usr/lib>\n",
    ));
    assert_eq!(list(&f.trace.files_read), ["/app/gone"]);
    assert!(f.trace.files_written.is_empty());
    // A deleted name is no path; a folder reached through a link is a pair.
    assert_eq!(pairs(&f.trace.resolved), [("/lib", "/usr/lib")]);
    // A real name that leads into /dev or to a socket (nginx's `access.log
    // -> /dev/stdout`) is neither read nor written, but it must exist in a
    // minimal image: it is probed. The names in /dev themselves are not.
    assert_eq!(list(&f.trace.paths_probed), ["/app/out", "/app/sock"]);
}

#[test]
fn d6_certificates() {
    let f = parse(concat!(
        "1 openat(AT_FDCWD, \"/etc/ssl/certs/ca-certificates.crt\", O_RDONLY) = 3\n",
        "1 openat(AT_FDCWD, \"/etc/ssl/openssl.cnf\", O_RDONLY) = 3\n",
        "1 openat(AT_FDCWD, \"/etc/pki/tls/certs/x\", O_RDONLY) = 3\n",
        "1 openat(AT_FDCWD, \"/app/key.PEM\", O_RDONLY) = 3\n",
        "1 openat(AT_FDCWD, \"/app/out.pem\", O_WRONLY|O_CREAT, 0600) = 3\n",
        "1 openat(AT_FDCWD, \"/app/ca.link\", O_RDONLY) = 3</etc/ssl/certs/ca.crt>\n",
        "1 openat(AT_FDCWD, \"/etc/ssl/certs/bundle\", O_RDONLY) = 3</opt/trust/bundle>\n",
        "1 openat(AT_FDCWD, \"/etc/ssl/cert.cnf\", O_RDONLY) = 3</opt/trust/cert.cnf>\n",
    ));
    // Either name classifies; the name reported is the one opened.
    assert_eq!(
        list(&f.trace.cert_paths_read),
        [
            "/app/ca.link",
            "/app/key.PEM",
            "/etc/pki/tls/certs/x",
            "/etc/ssl/certs/bundle",
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
    // predates the open. fds 9 and 99 come from no traced open: skipped.
    assert_eq!(
        list(&f.trace.shared_libs_loaded),
        ["/lib/libA.so", "/lib/libB.so", "/lib/libC.so"]
    );
}

#[test]
fn d7_libraries_are_named_as_opened_and_only_real_mappings_count() {
    let f = parse(concat!(
        "1 openat(AT_FDCWD</>, \"/etc/ld.so.cache\", O_RDONLY|O_CLOEXEC) = 3</etc/ld.so.cache>\n",
        "1 mmap(NULL, 34019, PROT_READ, MAP_PRIVATE, 3</etc/ld.so.cache>, 0) = 0x7f0000000000\n",
        "1 openat(AT_FDCWD</>, \"/lib/x86_64-linux-gnu/libz.so.1\", O_RDONLY|O_CLOEXEC) = 3</usr/lib/x86_64-linux-gnu/libz.so.1.2.13>\n",
        "1 mmap(0x7f0000001000, 77824, PROT_READ|PROT_EXEC, MAP_PRIVATE|MAP_FIXED|MAP_DENYWRITE, 3</usr/lib/x86_64-linux-gnu/libz.so.1.2.13>, 0x3000) = 0x7f0000001000\n",
        // fd 4 reused by memfd_create (not traced), fd 5 by dup2 (not traced).
        "1 openat(AT_FDCWD</>, \"/lib/libE.so\", O_RDONLY) = 4</usr/lib/libE.so>\n",
        "1 mmap(NULL, 8192, PROT_READ|PROT_EXEC, MAP_SHARED, 4</memfd:jit (deleted)>, 0) = 0x7f0000002000\n",
        "1 openat(AT_FDCWD</>, \"/lib/libF.so\", O_RDONLY) = 5</usr/lib/libF.so>\n",
        "1 mmap(NULL, 8192, PROT_READ|PROT_EXEC, MAP_PRIVATE, 5</usr/lib/libG.so>, 0) = 0x7f0000003000\n",
        "1 openat(AT_FDCWD</>, \"/lib/libH.so\", O_RDONLY) = 6</usr/lib/libH.so>\n",
        "1 mmap(NULL, 8192, PROT_READ|PROT_EXEC, MAP_PRIVATE, 6</usr/lib/libH.so>, 0) = -1 ENOMEM (Cannot allocate memory)\n",
    ));
    assert_eq!(
        list(&f.trace.shared_libs_loaded),
        ["/lib/x86_64-linux-gnu/libz.so.1"]
    );
    assert!(f.trace.files_read.contains("/etc/ld.so.cache"));
    assert_eq!(
        f.trace
            .resolved
            .get("/lib/x86_64-linux-gnu/libz.so.1")
            .map(String::as_str),
        Some("/usr/lib/x86_64-linux-gnu/libz.so.1.2.13")
    );
    assert_eq!(f.malformed_lines, 0);
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
    let f = parse_trace(
        text.as_bytes(),
        &ParseOptions {
            interpreters,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        list(&f.trace.binaries_executed),
        ["/bin/busybox", "/entry.sh"]
    );
    assert_eq!(f.script_shell_invocations, 0, "busybox is not a shell name");
}

#[test]
fn d8_relative_execs_take_the_cwd_the_new_program_shows() {
    let trace = concat!(
        "10 execve(\"/usr/bin/sh\", [\"sh\", \"-c\", \"cd app && ./bin/run\"], 0x1 /* 1 var */) = 0\n",
        "10 newfstatat(AT_FDCWD</work>, \".\", {st_mode=S_IFDIR|0755, st_size=4096, ...}, 0) = 0\n",
        // The shell's `cd app` is not traced: /work is stale by now.
        "10 vfork( <unfinished ...>\n",
        "11 execve(\"./bin/run\", [\"./bin/run\"], 0x1 /* 1 var */ <unfinished ...>\n",
        "10 <... vfork resumed>) = 11\n",
        "11 <... execve resumed>) = 0\n",
        "11 openat(AT_FDCWD</work/app>, \"/etc/ld.so.cache\", O_RDONLY|O_CLOEXEC) = 3</etc/ld.so.cache>\n",
        "10 vfork() = 12\n",
        "12 execve(\"../tool\", [\"../tool\"], 0x1 /* 1 var */) = 0\n",
        "12 +++ exited with 0 +++\n",
        "10 execveat(AT_FDCWD</work>, \"sub/./x\", [\"x\"], 0x1 /* 1 var */, 0) = 0\n",
        "13 execve(\"bin/last\", [\"last\"], 0x1 /* 1 var */) = 0\n",
    );
    let mut asked = Vec::new();
    let mut lookup = |p: &str| {
        asked.push(p.to_owned());
        None
    };
    let (f, _) = codegenie::strace::parse_trace_with_lookup(
        trace.as_bytes(),
        &ParseOptions::default(),
        &mut lookup,
    )
    .unwrap();
    // A program that never shows its cwd keeps its relative name.
    assert_eq!(
        list(&f.trace.binaries_executed),
        [
            "../tool",
            "/usr/bin/sh",
            "/work/app/bin/run",
            "/work/sub/x",
            "bin/last"
        ]
    );
    // Interpreters are looked up by absolute path only.
    assert_eq!(asked, ["/usr/bin/sh", "/work/app/bin/run", "/work/sub/x"]);
    assert_eq!(f.trace.shell_invocations, 1);
}

#[test]
fn d11_an_executed_path_resolves_through_proc_self_exe_when_its_binary_is_known() {
    let trace = concat!(
        "1 execve(\"/bin/sh\", [\"sh\"], 0x1 /* 1 var */) = 0\n",
        "1 readlink(\"/proc/self/exe\", \"/usr/bin/dash\", 4096) = 13\n",
        "1 clone(child_stack=NULL, flags=SIGCHLD) = 2\n",
        "2 execve(\"/app/run.sh\", [\"/app/run.sh\"], 0x1 /* 1 var */) = 0\n",
        "2 readlinkat(AT_FDCWD</app>, \"/proc/self/exe\", \"/usr/bin/dash\", 4096) = 13\n",
        "1 execve(\"/usr/bin/python3\", [\"python3\"], 0x1 /* 1 var */) = 0\n",
        "1 openat(AT_FDCWD</app>, \"/proc/self/exe\", O_RDONLY|O_CLOEXEC) = 3</usr/bin/python3.11>\n",
        "3 execve(\"/usr/bin/node\", [\"node\"], 0x1 /* 1 var */) = 0\n",
        "3 readlink(\"/proc/self/exe\", \"/usr/local/b\"..., 12) = 12\n",
        "3 readlink(\"/proc/self/exe\", \"/opt/x\", 4096) = 9\n",
    );
    // Without interpreters, `/app/run.sh` may be a script whose interpreter
    // is what /proc/self/exe names: nothing is recorded.
    let plain = parse(trace);
    assert!(plain.trace.resolved.is_empty());
    assert!(plain.trace.files_read.is_empty(), "/proc/self/exe is /proc");
    assert!(plain.trace.paths_probed.is_empty(), "/proc is no probe");
    // With them, a script runs its interpreter and anything else itself.
    // Truncated (`...`) or short targets are not evidence.
    let f = parse_with(trace, &[("/app/run.sh", "/bin/sh")]);
    assert_eq!(
        pairs(&f.trace.resolved),
        [
            ("/bin/sh", "/usr/bin/dash"),
            ("/usr/bin/python3", "/usr/bin/python3.11")
        ]
    );
}

#[test]
fn d12_successful_existence_probes_name_paths() {
    let f = parse(concat!(
        "1 execve(\"/bin/app\", [\"app\"], 0x1 /* 1 var */) = 0\n",
        "1 newfstatat(AT_FDCWD</srv>, \"cfg/./app.yaml\", {st_mode=S_IFREG|0644, st_size=2, ...}, 0) = 0\n",
        "1 newfstatat(AT_FDCWD</srv>, \"missing\", 0x7ffd00000000, 0) = -1 ENOENT (No such file or directory)\n",
        "1 newfstatat(3</etc/ld.so.cache>, \"\", {st_mode=S_IFREG|0644, st_size=34019, ...}, AT_EMPTY_PATH) = 0\n",
        "1 stat(\"/usr/lib/python3.11/os.py\", {st_mode=S_IFREG|0644, st_size=39504, ...}) = 0\n",
        "1 lstat(\"rel/link\", {st_mode=S_IFLNK|0777, st_size=6, ...}) = 0\n",
        "1 statx(AT_FDCWD</srv>, \"/opt//x/\", AT_STATX_SYNC_AS_STAT, STATX_ALL, {stx_mask=STATX_BASIC_STATS, stx_mode=S_IFDIR|0755, ...}) = 0\n",
        "1 access(\"/etc/passwd\", R_OK) = 0\n",
        "1 access(\"/etc/shadow\", R_OK) = -1 EACCES (Permission denied)\n",
        "1 faccessat(AT_FDCWD</srv>, \"bin\", X_OK) = 0\n",
        "1 faccessat2(5</opt/d>, \"e\", X_OK, AT_EACCESS) = 0\n",
        "1 readlink(\"/etc/alternatives/java\", \"/usr/lib/jvm/bin/java\", 4096) = 21\n",
        "1 readlinkat(AT_FDCWD</srv>, \"l\", \"t\", 4096) = 1\n",
        "1 newfstatat(AT_FDCWD</srv>, \"/proc/self/status\", {st_mode=S_IFREG|0444, st_size=0, ...}, 0) = 0\n",
        "1 stat(\"/dev/null\", {st_mode=S_IFCHR|0666, st_rdev=makedev(0x1, 0x3), ...}) = 0\n",
        "1 access(\"/sys/fs/cgroup\", F_OK) = 0\n",
        "1 stat(0x7ffd00000010, 0x7ffd00000020) = 0\n",
    ));
    assert_eq!(
        list(&f.trace.paths_probed),
        [
            "/etc/alternatives/java",
            "/etc/passwd",
            "/opt/d/e",
            "/opt/x",
            "/srv/bin",
            "/srv/cfg/app.yaml",
            "/srv/l",
            "/srv/rel/link",
            "/usr/lib/python3.11/os.py"
        ]
    );
    assert!(f.trace.files_read.is_empty(), "a probe is not a read");
    assert!(
        f.trace.resolved.is_empty(),
        "a link's target is one hop, not a resolution"
    );
    assert_eq!(f.malformed_lines, 0);
}

#[test]
fn union_keeps_the_first_resolution_and_unions_probes() {
    let mut a = parse(concat!(
        "1 openat(AT_FDCWD</>, \"/lib/libz.so.1\", O_RDONLY) = 3</usr/lib/libz.so.1.2.13>\n",
        "1 stat(\"/etc/a\", {st_mode=S_IFREG|0644, st_size=1, ...}) = 0\n",
    ))
    .trace;
    let b: ParsedTrace = parse(concat!(
        "1 openat(AT_FDCWD</>, \"/lib/libz.so.1\", O_RDONLY) = 3</usr/lib/libz.so.1.3>\n",
        "1 openat(AT_FDCWD</>, \"/bin/sh\", O_RDONLY) = 3</usr/bin/dash>\n",
        "1 stat(\"/etc/b\", {st_mode=S_IFREG|0644, st_size=1, ...}) = 0\n",
    ))
    .trace;
    let mut merged = a.clone();
    merged.merge(b.clone());
    a.union(&b);
    assert_eq!(merged, a, "merge by value is union");
    assert_eq!(
        pairs(&a.resolved),
        [
            ("/bin/sh", "/usr/bin/dash"),
            ("/lib/libz.so.1", "/usr/lib/libz.so.1.2.13")
        ]
    );
    assert_eq!(list(&a.paths_probed), ["/etc/a", "/etc/b"]);
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

#[test]
fn interpreters_are_looked_up_once_per_path_in_a_single_pass() {
    let trace = "\
100 execve(\"/app/start.sh\", [\"/app/start.sh\"], 0x7ffd /* 1 var */) = 0
100 clone(child_stack=NULL, flags=SIGCHLD) = 101
101 execve(\"/proc/self/exe\", [\"cat\", \"/etc/x\"], 0x7ffd /* 1 var */) = 0
100 execve(\"/app/start.sh\", [\"/app/start.sh\"], 0x7ffd /* 1 var */) = 0
100 +++ exited with 0 +++
";
    let mut asked: Vec<String> = Vec::new();
    let mut lookup = |p: &str| {
        asked.push(p.to_owned());
        match p {
            "/app/start.sh" => Some("/bin/sh".to_owned()),
            "/bin/sh" => Some("/lib/ld-musl-x86_64.so.1".to_owned()),
            _ => None,
        }
    };
    let (facts, interpreters) = codegenie::strace::parse_trace_with_lookup(
        trace.as_bytes(),
        &Default::default(),
        &mut lookup,
    )
    .unwrap();
    // Each path once, the script's interpreter and its loader included.
    assert_eq!(
        asked,
        ["/app/start.sh", "/bin/sh", "/lib/ld-musl-x86_64.so.1"]
    );
    assert_eq!(
        interpreters.into_iter().collect::<Vec<_>>(),
        [
            ("/app/start.sh".to_owned(), "/bin/sh".to_owned()),
            ("/bin/sh".to_owned(), "/lib/ld-musl-x86_64.so.1".to_owned()),
        ]
    );
    // The child re-exec'd its own binary, which is the script's interpreter.
    assert_eq!(
        facts.trace.binaries_executed.iter().collect::<Vec<_>>(),
        ["/app/start.sh", "/bin/sh"]
    );
    // Two execs of a script whose interpreter is a shell.
    assert_eq!(facts.script_shell_invocations, 2);
    assert_eq!(facts.trace.shell_invocations, 0);
}

#[test]
fn missing_paths_are_the_enoent_failures_as_named() {
    let f = parse(concat!(
        "20  openat(AT_FDCWD</app>, \"node_modules/x/index.js\", O_RDONLY|O_CLOEXEC) = -1 ENOENT (No such file or directory)\n",
        "20  newfstatat(AT_FDCWD</app>, \"lib/os.py\", 0x7ffd, 0) = -1 ENOENT (No such file or directory)\n",
        "20  access(\"/etc/ld.so.preload\", R_OK) = -1 ENOENT (No such file or directory)\n",
        "20  openat(AT_FDCWD</app>, \"secret\", O_RDONLY) = -1 EACCES (Permission denied)\n",
        "20  openat(AT_FDCWD</app>, \"/proc/self/x\", O_RDONLY) = -1 ENOENT (No such file or directory)\n",
        "20  execve(\"/usr/local/bin/sh\", [\"sh\"], 0x7ffd /* 3 vars */) = -1 ENOENT (No such file or directory)\n",
    ));
    assert_eq!(
        list(&f.missing),
        [
            "/app/lib/os.py",
            "/app/node_modules/x/index.js",
            "/etc/ld.so.preload",
            "/usr/local/bin/sh"
        ],
        "EACCES and /proc are not missing files"
    );
    assert!(f.trace.files_read.is_empty());
}

#[test]
fn execs_keep_their_argv_once_per_distinct_pair() {
    let f = parse(concat!(
        "30  execve(\"/usr/bin/node\", [\"node\", \"--use-openssl-ca\", \"/app/server.js\"], 0x7ffd /* 5 vars */) = 0\n",
        "31  execve(\"/bin/sh\", [\"/bin/sh\", \"-c\", \"echo \\\"started\\\"\"], 0x7ffd /* 5 vars */) = 0\n",
        "32  execve(\"/bin/sh\", [\"/bin/sh\", \"-c\", \"echo \\\"started\\\"\"], 0x7ffd /* 5 vars */) = 0\n",
    ));
    let execs: Vec<(&str, Vec<&str>)> = f
        .execs
        .iter()
        .map(|e| (e.path.as_str(), e.argv.iter().map(String::as_str).collect()))
        .collect();
    assert_eq!(
        execs,
        [
            (
                "/usr/bin/node",
                vec!["node", "--use-openssl-ca", "/app/server.js"]
            ),
            ("/bin/sh", vec!["/bin/sh", "-c", "echo \"started\""]),
        ]
    );
    assert_eq!(f.trace.shell_invocations, 2);
}

#[test]
fn with_chdir_traced_relative_execs_use_the_cwd_at_exec_time() {
    // `cd /srv && ./bin/httpd -h www`: httpd changes to www before it shows
    // any cwd; the exec was relative to /srv.
    let text = concat!(
        "40  newfstatat(AT_FDCWD</repo>, \"x\", 0x7ffd, 0) = 0\n",
        "40  chdir(\"/srv\") = 0\n",
        "40  execve(\"./bin/httpd\", [\"./bin/httpd\", \"-h\", \"www\"], 0x7ffd /* 1 var */) = 0\n",
        "40  chdir(\"www\") = 0\n",
        "40  openat(AT_FDCWD</srv/www>, \"index.html\", O_RDONLY) = 3</srv/www/index.html>\n",
    );
    let traced = parse_trace(
        text.as_bytes(),
        &ParseOptions {
            chdir_traced: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(list(&traced.trace.binaries_executed), ["/srv/bin/httpd"]);
    assert_eq!(list(&traced.trace.files_read), ["/srv/www/index.html"]);
    // Not knowing whether chdir was traced, the cwd before the exec is not
    // trusted, and the new program's chdir comes before it shows one.
    let unknown = parse(text);
    assert_eq!(list(&unknown.trace.binaries_executed), ["bin/httpd"]);
}
