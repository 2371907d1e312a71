//! The operating-system calls of daemon mode (users, privileges, signals, sockets, process
//! ends). The only file of `daemon` with `unsafe`.

use crate::config::daemon::Ident;
use std::ffi::{CStr, CString};
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

/// A user as the password database knows it.
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub name: CString,
    pub home: String,
}

fn passwd(by: &Ident) -> Option<User> {
    let mut pw: libc::passwd = unsafe_zeroed();
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    let mut buf = vec![0 as libc::c_char; 16384];
    // SAFETY: every pointer is to a live local buffer of the given size; getpwnam_r/getpwuid_r
    // write only into them and set `out` to &pw or null.
    let rc = unsafe {
        match by {
            Ident::Name(n) => {
                let c = CString::new(n.as_str()).ok()?;
                libc::getpwnam_r(c.as_ptr(), &mut pw, buf.as_mut_ptr(), buf.len(), &mut out)
            }
            Ident::Id(u) => libc::getpwuid_r(*u, &mut pw, buf.as_mut_ptr(), buf.len(), &mut out),
        }
    };
    if rc != 0 || out.is_null() {
        return None;
    }
    // SAFETY: on success pw's strings point into `buf`, which is still alive.
    unsafe {
        Some(User {
            uid: pw.pw_uid,
            gid: pw.pw_gid,
            name: CStr::from_ptr(pw.pw_name).to_owned(),
            home: CStr::from_ptr(pw.pw_dir).to_string_lossy().into_owned(),
        })
    }
}

fn unsafe_zeroed<T>() -> T {
    // SAFETY: only used for plain C structs (passwd, group) for which all-zero is valid.
    unsafe { std::mem::zeroed() }
}

/// Looks a user up by name or `#uid`.
pub fn user(by: &Ident) -> Result<User, String> {
    match passwd(by) {
        Some(u) => Ok(u),
        None => match by {
            // A bare number with no password entry is still usable.
            Ident::Id(u) => Ok(User {
                uid: *u,
                gid: *u,
                name: CString::new(format!("#{u}")).expect("no NUL"),
                home: "/".into(),
            }),
            Ident::Name(n) => Err(format!("unknown user '{n}'")),
        },
    }
}

/// Looks a group up by name or `#gid`.
pub fn group(by: &Ident) -> Result<u32, String> {
    match by {
        Ident::Id(g) => Ok(*g),
        Ident::Name(n) => {
            let c = CString::new(n.as_str()).map_err(|_| format!("bad group '{n}'"))?;
            let mut gr: libc::group = unsafe_zeroed();
            let mut out: *mut libc::group = std::ptr::null_mut();
            let mut buf = vec![0 as libc::c_char; 16384];
            // SAFETY: as in `passwd`.
            let rc = unsafe {
                libc::getgrnam_r(c.as_ptr(), &mut gr, buf.as_mut_ptr(), buf.len(), &mut out)
            };
            if rc != 0 || out.is_null() {
                Err(format!("unknown group '{n}'"))
            } else {
                Ok(gr.gr_gid)
            }
        }
    }
}

/// The effective uid of this process.
pub fn euid() -> u32 {
    // SAFETY: no preconditions.
    unsafe { libc::geteuid() }
}

/// The groups `name` belongs to (its primary `gid` first), as `initgroups` would set them;
/// read before a chroot, whose jail need not hold the group database.
pub fn group_list(name: &CStr, gid: u32) -> Result<Vec<u32>, String> {
    let mut n: libc::c_int = 64;
    loop {
        let mut all = vec![0 as libc::gid_t; n as usize];
        let asked = n;
        // SAFETY: `all` holds `n` entries; getgrouplist writes at most that many and sets `n`
        // to the number it has (or needs).
        let rc = unsafe { libc::getgrouplist(name.as_ptr(), gid, all.as_mut_ptr(), &mut n) };
        if rc >= 0 {
            all.truncate(n.max(0) as usize);
            return Ok(all);
        }
        if n <= asked {
            n = asked.saturating_mul(2);
        }
        if n > 65536 {
            return Err(format!("getgrouplist({}) failed", name.to_string_lossy()));
        }
    }
}

/// Makes `dir` this process's root directory (`chroot=`), and `/` inside it the current one.
pub fn chroot(dir: &str) -> Result<(), String> {
    let c = CString::new(dir).map_err(|_| format!("chroot={dir}: contains NUL"))?;
    // SAFETY: NUL-terminated paths; plain system calls, the process is single-threaded here.
    unsafe {
        if libc::chroot(c.as_ptr()) != 0 {
            return Err(format!(
                "chroot({dir}) failed: {}",
                std::io::Error::last_os_error()
            ));
        }
        if libc::chdir(c"/".as_ptr()) != 0 {
            return Err(format!(
                "chdir(/) in chroot {dir} failed: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

/// Switches to `uid`/`gid` with supplementary `groups` for good.
pub fn drop_privileges(uid: u32, gid: u32, groups: &[u32]) -> Result<(), String> {
    let err = |what: &str| format!("{what} failed: {}", std::io::Error::last_os_error());
    // SAFETY: plain system calls on values; the process is single-threaded here (just
    // forked, before any thread or Python starts).
    unsafe {
        if libc::setgid(gid) != 0 {
            return Err(err(&format!("setgid({gid})")));
        }
        if libc::setgroups(groups.len(), groups.as_ptr()) != 0 {
            return Err(err("setgroups"));
        }
        if libc::setuid(uid) != 0 {
            return Err(err(&format!("setuid({uid})")));
        }
        if libc::geteuid() == 0 || libc::getuid() == 0 {
            return Err("still running as root after setuid".into());
        }
    }
    Ok(())
}

/// Sets the umask.
pub fn set_umask(mask: u32) {
    // SAFETY: no preconditions.
    unsafe { libc::umask(mask as libc::mode_t) };
}

/// Gives the signals Apache's parent handles their default meaning again (its handlers
/// would only set flags nobody reads here); SIGPIPE is ignored so a vanished peer is an
/// error, not a death.
pub fn reset_signals() {
    // SAFETY: installing default dispositions and clearing the mask has no preconditions.
    unsafe {
        for s in [
            libc::SIGTERM,
            libc::SIGINT,
            libc::SIGHUP,
            libc::SIGUSR1,
            libc::SIGUSR2,
            libc::SIGWINCH,
            libc::SIGCHLD,
            libc::SIGXCPU,
        ] {
            libc::signal(s, libc::SIG_DFL);
        }
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// Ends this process at once, without running Apache's or Rust's exit handlers.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit has no preconditions.
    unsafe { libc::_exit(code) }
}

/// Closes a descriptor this process does not need.
pub fn close(fd: RawFd) {
    if fd >= 0 {
        // SAFETY: the caller owns `fd` and nothing else uses it afterwards.
        unsafe { libc::close(fd) };
    }
}

/// The uid of the process at the other end of a UNIX socket.
pub fn peer_uid(fd: RawFd) -> Option<u32> {
    let mut cred: libc::ucred = unsafe_zeroed();
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: cred and len are live locals of the right size for SO_PEERCRED.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(cred.uid)
}

/// Creates the listening socket of a group: mode 0600 (bound under umask 0077, so it is never
/// open to others even for a moment), owned by
/// `owner` when given, with `backlog`, close-on-exec.
pub fn listen_unix(
    path: &std::path::Path,
    backlog: u32,
    owner: Option<(u32, u32)>,
    (send_buffer, receive_buffer): (u32, u32),
) -> Result<RawFd, String> {
    use std::os::fd::IntoRawFd;
    let _ = std::fs::remove_file(path);
    // SAFETY: umask has no preconditions; the parent is single-threaded in post_config.
    let old = unsafe { libc::umask(0o077) };
    let bound = std::os::unix::net::UnixListener::bind(path);
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    let l = bound.map_err(|e| format!("cannot listen on {}: {e}", path.display()))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("cannot restrict {}: {e}", path.display()))?;
    }
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .map_err(|e| format!("cannot give {} to uid {uid}: {e}", path.display()))?;
    }
    let fd = l.into_raw_fd();
    // SAFETY: fd is the listening socket just made; listen again only changes the backlog.
    // Accepted connections inherit the buffer sizes.
    unsafe {
        for (opt, size) in [
            (libc::SO_SNDBUF, send_buffer),
            (libc::SO_RCVBUF, receive_buffer),
        ] {
            if size > 0 {
                let v = size.min(i32::MAX as u32) as libc::c_int;
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    opt,
                    (&raw const v).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
        }
        libc::listen(fd, backlog.min(i32::MAX as u32) as libc::c_int);
    }
    Ok(fd)
}

/// Writes `data` on the UNIX stream socket `sock` with a duplicate of `fd` attached
/// (`SCM_RIGHTS`, sent with the first byte). Returns how many bytes went out; the rest, if
/// any, is the caller's to write without the descriptor.
pub fn send_with_fd(sock: RawFd, data: &[u8], fd: RawFd) -> std::io::Result<usize> {
    // A u64 array keeps the control buffer aligned for cmsghdr.
    let mut control = [0u64; 4];
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
    debug_assert!(space <= std::mem::size_of_val(&control));
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    let mut msg: libc::msghdr = unsafe_zeroed();
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: msg points at the live iovec (read-only use by sendmsg) and at `control`,
    // which is aligned and at least CMSG_SPACE(one fd) long, so CMSG_FIRSTHDR is non-null
    // and CMSG_DATA has room for one descriptor.
    let n = unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd);
        libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL)
    };
    if n < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Reads from the UNIX stream socket `sock` like read(2), keeping any descriptors that
/// came with the bytes (close-on-exec) in `fds`. Descriptors beyond the few a frame can
/// carry are closed by the kernel.
pub fn recv_with_fds(
    sock: RawFd,
    buf: &mut [u8],
    fds: &mut Vec<std::os::fd::OwnedFd>,
) -> std::io::Result<usize> {
    use std::os::fd::FromRawFd;
    const MAX_FDS: usize = 4;
    let mut control = [0u64; 4];
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE((MAX_FDS * std::mem::size_of::<RawFd>()) as u32) };
    debug_assert!(space as usize <= std::mem::size_of_val(&control));
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut msg: libc::msghdr = unsafe_zeroed();
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: msg points at the live, writable `buf` and `control` of the lengths given.
    let n = unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: recvmsg filled msg_control with msg_controllen bytes of well-formed cmsghdrs;
    // CMSG_NXTHDR stops within them. Every SCM_RIGHTS descriptor is new in this process and
    // owned by nobody else, so each becomes an OwnedFd (closed when dropped).
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg);
                let bytes = (*cmsg).cmsg_len as usize - (data as usize - cmsg as usize);
                for i in 0..bytes / std::mem::size_of::<RawFd>() {
                    let fd = std::ptr::read_unaligned(data.cast::<RawFd>().add(i));
                    fds.push(std::os::fd::OwnedFd::from_raw_fd(fd));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok(n as usize)
}

/// Reads from `fd` at `offset` without moving its position.
pub fn pread(fd: RawFd, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    // SAFETY: buf is a live writable buffer of buf.len() bytes.
    let n = unsafe {
        libc::pread(
            fd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            offset as libc::off_t,
        )
    };
    if n < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Random bytes from the kernel.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    let mut got = 0;
    while got < n {
        // SAFETY: writes at most n - got bytes into the live buffer.
        let r = unsafe { libc::getrandom(v[got..].as_mut_ptr().cast(), n - got, 0) };
        if r <= 0 {
            // Never expected on Linux >= 3.17; a fixed secret still leaves the socket
            // permissions and SO_PEERCRED in force.
            break;
        }
        got += r as usize;
    }
    v
}

/// Ends `pids`: SIGTERM, up to `grace` for them to go, then SIGKILL. Each is reaped.
pub fn terminate(pids: &[i32], grace: Duration) {
    let mut left: Vec<i32> = pids.iter().copied().filter(|p| *p > 0).collect();
    for &p in &left {
        // SAFETY: p is a child of this process that has not been reaped yet.
        unsafe { libc::kill(p, libc::SIGTERM) };
    }
    let start = Instant::now();
    let mut pause = Duration::from_millis(2);
    while !left.is_empty() && start.elapsed() < grace {
        // SAFETY: WNOHANG on our own children.
        left.retain(|&p| unsafe { libc::waitpid(p, std::ptr::null_mut(), libc::WNOHANG) } == 0);
        if !left.is_empty() {
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }
    for &p in &left {
        // SAFETY: as above; then a blocking reap of a killed child.
        unsafe {
            libc::kill(p, libc::SIGKILL);
            libc::waitpid(p, std::ptr::null_mut(), 0);
        }
    }
}

/// This process's id.
pub fn pid() -> i32 {
    std::process::id() as i32
}

/// The listening socket inherited from the parent, owned by this process from now on.
pub fn listener(fd: RawFd) -> std::os::unix::net::UnixListener {
    use std::os::fd::FromRawFd;
    // SAFETY: `fd` is the group's listening socket, inherited across fork and used by
    // nothing else in this process.
    unsafe { std::os::unix::net::UnixListener::from_raw_fd(fd) }
}

/// Sets an environment variable before any thread starts (the daemon right after fork).
pub fn set_env_single_threaded(key: &str, value: &str) {
    // SAFETY: called only while the process has a single thread, so nothing reads the
    // environment concurrently.
    unsafe { std::env::set_var(key, value) };
}

/// Connects to a UNIX socket, waiting at most `timeout` while its backlog is full (Linux
/// honours the send timeout in a blocking `connect` on a UNIX socket).
pub fn connect_unix(
    path: &std::path::Path,
    timeout: Duration,
) -> std::io::Result<std::os::unix::net::UnixStream> {
    use std::os::fd::FromRawFd;
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    let mut addr: libc::sockaddr_un = unsafe_zeroed();
    if bytes.len() >= addr.sun_path.len() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "socket path too long",
        ));
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    let t = timeout.max(Duration::from_millis(1));
    let tv = libc::timeval {
        tv_sec: t.as_secs() as libc::time_t,
        tv_usec: t.subsec_micros() as libc::suseconds_t,
    };
    // SAFETY: a new socket owned here until it is handed to UnixStream or closed; addr and
    // tv are live locals of the sizes passed.
    unsafe {
        let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            (&raw const tv).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        );
        let len = (std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1) as libc::socklen_t;
        if libc::connect(fd, (&raw const addr).cast(), len) != 0 {
            let e = std::io::Error::last_os_error();
            libc::close(fd);
            return Err(e);
        }
        Ok(std::os::unix::net::UnixStream::from_raw_fd(fd))
    }
}

fn sigset(signals: &[libc::c_int]) -> libc::sigset_t {
    let mut set: libc::sigset_t = unsafe_zeroed();
    // SAFETY: set is a live sigset_t.
    unsafe {
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
    }
    set
}

const CONTROL: [libc::c_int; 3] = [libc::SIGTERM, libc::SIGUSR1, libc::SIGXCPU];

/// Blocks the stop (SIGTERM) and drain (SIGUSR1, SIGXCPU) signals in this thread and every
/// thread it starts afterwards, so that only [`wait_control`] sees them.
pub fn block_control_signals() {
    let set = sigset(&CONTROL);
    // SAFETY: set is a live, initialised sigset_t.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
}

/// What the parent asked of a daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// SIGTERM: end now.
    Stop,
    /// SIGUSR1 from the parent (restart) or this process (recycling), or SIGXCPU: finish
    /// the requests in hand, then end.
    Drain,
    /// SIGUSR1 from anyone else (an operator evicting the process): as `Drain`, bounded
    /// by eviction-timeout, and replaced by the parent.
    Evict,
}

/// Waits up to `timeout` (None: for ever) for a blocked control signal.
pub fn wait_control(timeout: Option<Duration>) -> Option<Control> {
    let set = sigset(&CONTROL);
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs() as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let mut info: libc::siginfo_t = unsafe_zeroed();
    // SAFETY: set, info and ts are live locals.
    let (sig, sender) = unsafe {
        let sig = libc::sigtimedwait(
            &set,
            &mut info,
            ts.as_ref()
                .map_or(std::ptr::null(), |t| t as *const libc::timespec),
        );
        (sig, if sig > 0 { info.si_pid() } else { 0 })
    };
    // SAFETY: no preconditions.
    let (me, parent) = unsafe { (libc::getpid(), libc::getppid()) };
    match sig {
        libc::SIGTERM => Some(Control::Stop),
        libc::SIGUSR1 if sender != me && sender != parent => Some(Control::Evict),
        libc::SIGUSR1 | libc::SIGXCPU => Some(Control::Drain),
        _ => None,
    }
}

/// True when a listening socket has a connection waiting to be accepted.
pub fn has_pending(fd: RawFd) -> bool {
    wait_readable(fd, Duration::ZERO)
}

/// Waits up to `timeout` for `fd` to become readable.
pub fn wait_readable(fd: RawFd, timeout: Duration) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
    // SAFETY: one live pollfd.
    unsafe { libc::poll(&mut p, 1, ms) > 0 && p.revents & libc::POLLIN != 0 }
}

/// Sends `signal` to a child process.
pub fn signal(pid: i32, signal: libc::c_int) {
    if pid > 0 {
        // SAFETY: pid is a child of this process that has not been reaped.
        unsafe { libc::kill(pid, signal) };
    }
}

/// Asks this process's main thread to drain (see [`wait_control`]).
pub fn drain_self() {
    // SAFETY: signalling our own process; SIGUSR1 is blocked in every thread but waited for.
    unsafe { libc::kill(libc::getpid(), libc::SIGUSR1) };
}

/// Asks this process's main thread to stop (see [`wait_control`]).
pub fn stop_self() {
    // SAFETY: signalling our own process; SIGTERM is blocked in every thread but waited for.
    unsafe { libc::kill(libc::getpid(), libc::SIGTERM) };
}

/// Sets this process's scheduling priority (`cpu-priority`).
pub fn set_priority(n: i32) -> Result<(), String> {
    // SAFETY: a plain system call on this process.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, n) } != 0 {
        return Err(format!(
            "cpu-priority={n}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Which resource limit.
#[derive(Debug, Clone, Copy)]
pub enum Limit {
    Data,
    AddressSpace,
    CpuSeconds,
}

/// Lowers a soft resource limit (the hard limit stays, so SIGXCPU comes before SIGKILL).
pub fn set_limit(which: Limit, value: u64) -> Result<(), String> {
    let res = match which {
        Limit::Data => libc::RLIMIT_DATA,
        Limit::AddressSpace => libc::RLIMIT_AS,
        Limit::CpuSeconds => libc::RLIMIT_CPU,
    };
    let mut cur: libc::rlimit = unsafe_zeroed();
    // SAFETY: cur is a live rlimit.
    unsafe { libc::getrlimit(res, &mut cur) };
    cur.rlim_cur = value as libc::rlim_t;
    if cur.rlim_max != libc::RLIM_INFINITY && cur.rlim_cur > cur.rlim_max {
        cur.rlim_cur = cur.rlim_max;
    }
    // SAFETY: as above.
    if unsafe { libc::setrlimit(res, &cur) } != 0 {
        return Err(format!(
            "{which:?} limit {value}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Ends both directions of a connection another thread may be blocked on (its blocked
/// read returns at once); the descriptor stays open for its owner to close.
pub fn shutdown(fd: RawFd) {
    // SAFETY: fd is an open socket, registered by its owner until it closes it.
    unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
}

/// True when `fd` has something to read, or its peer closed or failed: a pooled connection
/// the daemon has given up (its `Closing` frame, or end of stream). Does not wait.
pub fn readable_or_closed(fd: RawFd) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one live pollfd, no wait.
    unsafe { libc::poll(&mut p, 1, 0) != 0 }
}

/// An epoll instance: the daemon's request threads wait on it for the listener and every
/// idle connection, each registered one-shot under a token.
pub struct Epoll(std::os::fd::OwnedFd);

impl Epoll {
    /// A new instance (close-on-exec).
    pub fn new() -> std::io::Result<Epoll> {
        use std::os::fd::FromRawFd;
        // SAFETY: a plain system call; the descriptor it returns is ours alone.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: fd was just created and is owned by nothing else.
        Ok(Epoll(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }))
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, token: u64) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLONESHOT) as u32,
            u64: token,
        };
        // SAFETY: the epoll descriptor is live; fd is an open descriptor the caller owns;
        // ev is a live event the kernel copies.
        if unsafe { libc::epoll_ctl(self.0.as_raw_fd(), op, fd, &mut ev) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Watches `fd` for one readable event reported as `token`.
    pub fn add(&self, fd: RawFd, token: u64) -> std::io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, token)
    }

    /// Watches a registered `fd` again for one readable event (after its last one fired).
    pub fn rearm(&self, fd: RawFd, token: u64) -> std::io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, token)
    }

    /// Waits (without end) for one event; its token.
    pub fn wait(&self) -> Option<u64> {
        use std::os::fd::AsRawFd;
        let mut ev = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: room for exactly the one event asked for.
        let n = unsafe { libc::epoll_wait(self.0.as_raw_fd(), &mut ev, 1, -1) };
        (n == 1).then_some(ev.u64)
    }
}

/// Sets a socket's send buffer (the kernel doubles it for its bookkeeping); best effort.
pub fn set_send_buffer(fd: RawFd, bytes: u32) {
    let v = bytes.min(i32::MAX as u32) as libc::c_int;
    // SAFETY: fd is an open socket; v is a live int of the size passed.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&raw const v).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}
