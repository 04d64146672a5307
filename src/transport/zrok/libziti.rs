//! libziti 0.29 (the build in the PyPI wheel `openziti==0.6.0`), loaded at run time from
//! `ZITI_LIB_PATH` with libloading: its blocking socket API. The only module with `unsafe`.
//!
//! Containment for what crashes or hangs the library: identities are validated in Rust first
//! (`env::validate_identity`), the controller is probed before the context is loaded, the
//! context is loaded once per process on a thread the caller bounds with a deadline, and
//! `Ziti_lib_shutdown` is never called (it crashes after a failed load).
#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use libloading::Library;

use super::ziti::{ZitiTransport, accept_on_thread};

pub const NOT_AVAILABLE: &str = "libziti not available: set ZITI_LIB_PATH";
/// The version whose signatures this module declares.
const SUPPORTED: &str = "0.29.";

#[repr(C)]
struct Version {
    version: *const c_char,
    revision: *const c_char,
    build_date: *const c_char,
}

type Context = *mut c_void;

/// The entry points, copied out of the library (which stays loaded until the process exits).
pub struct LibZiti {
    context: usize,
    last_error: unsafe extern "C" fn() -> c_int,
    socket: unsafe extern "C" fn(c_int) -> c_int,
    connect: unsafe extern "C" fn(c_int, Context, *const c_char, *const c_char) -> c_int,
    bind: unsafe extern "C" fn(c_int, Context, *const c_char, *const c_char) -> c_int,
    listen: unsafe extern "C" fn(c_int, c_int) -> c_int,
    accept: unsafe extern "C" fn(c_int, *mut c_char, c_int) -> c_int,
    errorstr: unsafe extern "C" fn(c_int) -> *const c_char,
    pub version: String,
}

/// Loaded, but no context yet.
pub struct Loaded {
    lib: LibZiti,
    load_context: unsafe extern "C" fn(*const c_char) -> Context,
}

impl Loaded {
    /// Opens the library at `path` and checks its version.
    pub fn open(path: &Path) -> Result<Self, String> {
        if !path.is_file() {
            return Err(format!("{NOT_AVAILABLE} ({} does not exist)", path.display()));
        }
        // SAFETY: loading runs the library's initialisers; libziti 0.29's only set up
        // globals. The default flags (lazy, local) keep its exported mbedTLS and libuv
        // symbols from interposing on anything else in the process.
        let lib = unsafe { Library::new(path) }.map_err(|e| format!("{NOT_AVAILABLE} ({e})"))?;
        // Never unloaded: Ziti_lib_init starts a thread that runs the library's code until the
        // process exits, so unmapping it would crash that thread (seen: SIGSEGV at exit).
        let lib: &'static Library = Box::leak(Box::new(lib));
        macro_rules! symbol {
            ($name:literal) => {
                // SAFETY: the types are libziti 0.29.3's prototypes (zitilib.h); the
                // version is checked right after, before any of them is called.
                *unsafe { lib.get($name) }.map_err(|e| format!("{NOT_AVAILABLE} ({e})"))?
            };
        }
        let get_version: unsafe extern "C" fn() -> *const Version = symbol!(b"ziti_get_version\0");
        // SAFETY: ziti_get_version returns a pointer to a static struct of C strings.
        let version = unsafe {
            let v = get_version();
            if v.is_null() || (*v).version.is_null() {
                return Err(format!("{NOT_AVAILABLE} (it reports no version)"));
            }
            CStr::from_ptr((*v).version).to_string_lossy().into_owned()
        };
        if !version.starts_with(SUPPORTED) {
            return Err(format!(
                "libziti {version} at {} is not supported: llm-gateway needs 0.29.x (openziti==0.6.0)",
                path.display()
            ));
        }
        let init: unsafe extern "C" fn() = symbol!(b"Ziti_lib_init\0");
        let load_context = symbol!(b"Ziti_load_context\0");
        let lib = LibZiti {
            last_error: symbol!(b"Ziti_last_error\0"),
            socket: symbol!(b"Ziti_socket\0"),
            connect: symbol!(b"Ziti_connect\0"),
            bind: symbol!(b"Ziti_bind\0"),
            listen: symbol!(b"Ziti_listen\0"),
            accept: symbol!(b"Ziti_accept\0"),
            errorstr: symbol!(b"ziti_errorstr\0"),
            context: 0,
            version,
        };
        // SAFETY: starts the library's loop thread; a second call is a no-op.
        unsafe { init() };
        Ok(Self { lib, load_context })
    }

    pub fn version(&self) -> &str {
        &self.lib.version
    }

    /// Loads the identity's context: blocks until the controller answered (no timeout of
    /// its own; run it on a thread the caller can abandon). Call once per process.
    pub fn load_context(mut self, identity: &Path) -> Result<LibZiti, String> {
        let path = CString::new(identity.as_os_str().as_encoded_bytes()).map_err(|_| "identity path has a NUL byte")?;
        // SAFETY: `path` is a valid C string alive for the call; the library copies it.
        let context = unsafe { (self.load_context)(path.as_ptr()) };
        if context.is_null() {
            return Err(format!("cannot load the zrok identity {}: {}", identity.display(), self.lib.error(-1)));
        }
        self.lib.context = context as usize;
        Ok(self.lib)
    }
}

impl LibZiti {
    /// Rule of the 0.29 API: a positive return is an errno; otherwise the thread's last
    /// error is a Ziti code (negative) or an errno (positive).
    fn error(&self, ret: c_int) -> String {
        let code = if ret > 0 {
            ret
        } else {
            // SAFETY: reads a thread-local integer; called on the thread of the failed call.
            unsafe { (self.last_error)() }
        };
        if code > 0 {
            return std::io::Error::from_raw_os_error(code).to_string();
        }
        // SAFETY: ziti_errorstr returns a static string for any input.
        let text = unsafe { CStr::from_ptr((self.errorstr)(code)) }.to_string_lossy().into_owned();
        format!("{text} ({code})")
    }

    fn socket_for(&self, service: &str, join: &str) -> Result<(RawFd, CString), String> {
        let name = CString::new(service).map_err(|_| "service name has a NUL byte")?;
        // SAFETY: creates a plain descriptor; no pointers involved.
        let fd = unsafe { (self.socket)(libc::SOCK_STREAM) };
        if fd < 0 {
            return Err(format!("cannot {join}: {}", self.error(fd)));
        }
        Ok((fd, name))
    }

    fn close_with(&self, fd: RawFd, what: String) -> String {
        // SAFETY: `fd` is ours and not yet wrapped in an owner.
        unsafe { libc::close(fd) };
        what
    }
}

impl ZitiTransport for LibZiti {
    fn dial(&self, service: &str) -> Result<UnixStream, String> {
        let (fd, name) = self.socket_for(service, "dial")?;
        // SAFETY: the context came from a successful load; `name` lives across the call;
        // a NULL terminator means any.
        let ret = unsafe { (self.connect)(fd, self.context as Context, name.as_ptr(), std::ptr::null()) };
        if ret != 0 {
            let why = self.error(ret);
            return Err(self.close_with(fd, format!("cannot dial the share: {why}")));
        }
        // SAFETY: on success the descriptor is one end of a Unix socketpair that we own.
        Ok(unsafe { UnixStream::from_raw_fd(fd) })
    }

    fn bind(&self, service: &str) -> Result<tokio::sync::mpsc::Receiver<UnixStream>, String> {
        let (fd, name) = self.socket_for(service, "bind")?;
        // SAFETY: as in `dial`.
        let ret = unsafe { (self.bind)(fd, self.context as Context, name.as_ptr(), std::ptr::null()) };
        if ret != 0 {
            let why = self.error(ret);
            return Err(self.close_with(fd, format!("cannot bind the share: {why}")));
        }
        // SAFETY: `fd` is bound; 64 pending connections.
        let ret = unsafe { (self.listen)(fd, 64) };
        if ret != 0 {
            let why = self.error(ret);
            return Err(self.close_with(fd, format!("cannot listen on the share: {why}")));
        }
        let accept = self.accept;
        let last_error = self.last_error;
        Ok(accept_on_thread(move || {
            let mut ready = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
            // SAFETY: one valid pollfd; waits until a client is pending (the library writes
            // a byte per client), since Ziti_accept blocks inside the library otherwise.
            if unsafe { libc::poll(&mut ready, 1, -1) } < 0 {
                return Err(format!("poll failed: {}", std::io::Error::last_os_error()));
            }
            let mut caller = [0 as c_char; 256];
            // SAFETY: blocks until a client is pending; `caller` is a writable buffer of the
            // length passed.
            let client = unsafe { accept(fd, caller.as_mut_ptr(), caller.len() as c_int) };
            if client < 0 {
                // SAFETY: thread-local read right after the failed call on this thread.
                let code = unsafe { last_error() };
                return Err(format!("accept failed (error {code})"));
            }
            // SAFETY: an accepted descriptor is a Unix socketpair end we own.
            Ok(unsafe { UnixStream::from_raw_fd(client) })
        }))
    }
}
