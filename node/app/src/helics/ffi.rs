//! HELICS's C API (libhelics 3.x, `helics.h`), loaded at run time with `dlopen`, so that
//! building spikebus never needs HELICS: only `spikebus run --helics` looks for the library.
//! Declares the few functions the node uses and wraps them in safe handles (`Federate`,
//! `Publication`, `Input`, `Endpoint`) whose calls return a `String` error with HELICS's own
//! message.
//!
//! Where the library is looked for, in order: the config's `library`, `$HELICS_LIBRARY`, the
//! `helics` Python package of an active virtual environment (`$VIRTUAL_ENV`: `pip install
//! helics` ships `libhelics.so` inside it), then the system's search path (`libhelics.so.3`).

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::{Path, PathBuf};

/// HELICS's `HelicsError`: 0 is no error.
#[repr(C)]
struct HelicsError {
    error_code: i32,
    message: *const c_char,
}

type Handle = *mut c_void;
type Err = *mut HelicsError;

// Constants of helics.h (3.6).
const HELICS_DATA_TYPE_DOUBLE: c_int = 1;
pub const HELICS_FLAG_UNINTERRUPTIBLE: c_int = 1;
pub const HELICS_FLAG_TERMINATE_ON_ERROR: c_int = 72;
pub const HELICS_PROPERTY_INT_LOG_LEVEL: c_int = 271;
/// `HELICS_TIME_MAXTIME`: what a time request returns once the federation has ended.
pub const HELICS_TIME_MAXTIME: f64 = 9_223_372_036.854_774;

/// The functions of the C API the node calls, resolved from the loaded library.
struct Api {
    get_version: unsafe extern "C" fn() -> *const c_char,
    error_initialize: unsafe extern "C" fn() -> HelicsError,
    create_federate_info: unsafe extern "C" fn() -> Handle,
    federate_info_free: unsafe extern "C" fn(Handle),
    info_set_core_type: unsafe extern "C" fn(Handle, *const c_char, Err),
    info_set_core_init: unsafe extern "C" fn(Handle, *const c_char, Err),
    info_set_broker: unsafe extern "C" fn(Handle, *const c_char, Err),
    info_set_flag: unsafe extern "C" fn(Handle, c_int, c_int, Err),
    info_set_int_property: unsafe extern "C" fn(Handle, c_int, c_int, Err),
    create_combination_federate: unsafe extern "C" fn(*const c_char, Handle, Err) -> Handle,
    register_global_publication: unsafe extern "C" fn(Handle, *const c_char, c_int, *const c_char, Err) -> Handle,
    register_subscription: unsafe extern "C" fn(Handle, *const c_char, *const c_char, Err) -> Handle,
    register_global_endpoint: unsafe extern "C" fn(Handle, *const c_char, *const c_char, Err) -> Handle,
    enter_executing_mode: unsafe extern "C" fn(Handle, Err),
    request_time: unsafe extern "C" fn(Handle, f64, Err) -> f64,
    publish_double: unsafe extern "C" fn(Handle, f64, Err),
    input_is_updated: unsafe extern "C" fn(Handle) -> c_int,
    input_get_double: unsafe extern "C" fn(Handle, Err) -> f64,
    endpoint_send_bytes_to: unsafe extern "C" fn(Handle, *const c_void, c_int, *const c_char, Err),
    endpoint_has_message: unsafe extern "C" fn(Handle) -> c_int,
    endpoint_get_message: unsafe extern "C" fn(Handle) -> Handle,
    message_get_time: unsafe extern "C" fn(Handle) -> f64,
    message_get_byte_count: unsafe extern "C" fn(Handle) -> c_int,
    message_get_bytes_pointer: unsafe extern "C" fn(Handle) -> *mut c_void,
    message_get_source: unsafe extern "C" fn(Handle) -> *const c_char,
    message_free: unsafe extern "C" fn(Handle),
    federate_global_error: unsafe extern "C" fn(Handle, c_int, *const c_char, Err),
    federate_disconnect: unsafe extern "C" fn(Handle, Err),
    federate_free: unsafe extern "C" fn(Handle),
    close_library: unsafe extern "C" fn(),
}

/// The candidates for the library, in the order they are tried.
fn candidates(configured: Option<&Path>) -> Vec<PathBuf> {
    let mut out = vec![];
    if let Some(p) = configured {
        out.push(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("HELICS_LIBRARY").filter(|p| !p.is_empty()) {
        out.push(PathBuf::from(p));
    }
    if let Some(venv) = std::env::var_os("VIRTUAL_ENV") {
        // <venv>/lib/python3.X/site-packages/helics/install/lib64/libhelics.so.3
        if let Ok(dirs) = std::fs::read_dir(Path::new(&venv).join("lib")) {
            let mut found: Vec<PathBuf> = dirs
                .flatten()
                .map(|d| d.path().join("site-packages/helics/install"))
                .flat_map(|p| [p.join("lib64/libhelics.so.3"), p.join("lib/libhelics.so.3")])
                .filter(|p| p.is_file())
                .collect();
            found.sort();
            out.extend(found);
        }
    }
    // The system's search path (LD_LIBRARY_PATH, ldconfig).
    out.push(PathBuf::from("libhelics.so.3"));
    out
}

/// The loaded library: its functions and the version it says it is.
pub struct Helics {
    api: &'static Api,
    pub path: PathBuf,
    pub version: String,
}

macro_rules! resolve {
    ($lib:expr, $path:expr, $name:literal) => {{
        // SAFETY: the symbol is the C function of helics.h with this signature; the library
        // is never unloaded (leaked below), so the pointer stays valid.
        let sym = unsafe { $lib.get(concat!($name, "\0").as_bytes()) }.map_err(|e| {
            format!("{} is not a usable HELICS 3 library: no `{}` ({e})", $path.display(), $name)
        })?;
        *sym
    }};
}

impl Helics {
    /// Loads libhelics from the first candidate that loads; the error lists what was tried and
    /// what to install.
    pub fn load(configured: Option<&Path>) -> Result<Helics, String> {
        let mut tried = vec![];
        for path in candidates(configured) {
            // SAFETY: loading runs the library's initializers; libhelics's are its C++ static
            // constructors, which have no preconditions on the loading process.
            match unsafe { libloading::Library::new(&path) } {
                Ok(lib) => return Helics::resolve(lib, path),
                Err(e) => tried.push(format!("{} ({e})", path.display())),
            }
        }
        Err(format!(
            "cannot load the HELICS library; tried: {}. Install HELICS 3 (`pip install helics==3.6.1` ships \
             libhelics.so inside the Python package) and name the library with `library` in the config or \
             $HELICS_LIBRARY, e.g. HELICS_LIBRARY=$(python3 -c 'import helics, pathlib; \
             print(pathlib.Path(helics.__file__).parent / \"install/lib64/libhelics.so.3\")')",
            tried.join("; ")
        ))
    }

    fn resolve(lib: libloading::Library, path: PathBuf) -> Result<Helics, String> {
        let api = Api {
            get_version: resolve!(lib, path, "helicsGetVersion"),
            error_initialize: resolve!(lib, path, "helicsErrorInitialize"),
            create_federate_info: resolve!(lib, path, "helicsCreateFederateInfo"),
            federate_info_free: resolve!(lib, path, "helicsFederateInfoFree"),
            info_set_core_type: resolve!(lib, path, "helicsFederateInfoSetCoreTypeFromString"),
            info_set_core_init: resolve!(lib, path, "helicsFederateInfoSetCoreInitString"),
            info_set_broker: resolve!(lib, path, "helicsFederateInfoSetBroker"),
            info_set_flag: resolve!(lib, path, "helicsFederateInfoSetFlagOption"),
            info_set_int_property: resolve!(lib, path, "helicsFederateInfoSetIntegerProperty"),
            create_combination_federate: resolve!(lib, path, "helicsCreateCombinationFederate"),
            register_global_publication: resolve!(lib, path, "helicsFederateRegisterGlobalPublication"),
            register_subscription: resolve!(lib, path, "helicsFederateRegisterSubscription"),
            register_global_endpoint: resolve!(lib, path, "helicsFederateRegisterGlobalEndpoint"),
            enter_executing_mode: resolve!(lib, path, "helicsFederateEnterExecutingMode"),
            request_time: resolve!(lib, path, "helicsFederateRequestTime"),
            publish_double: resolve!(lib, path, "helicsPublicationPublishDouble"),
            input_is_updated: resolve!(lib, path, "helicsInputIsUpdated"),
            input_get_double: resolve!(lib, path, "helicsInputGetDouble"),
            endpoint_send_bytes_to: resolve!(lib, path, "helicsEndpointSendBytesTo"),
            endpoint_has_message: resolve!(lib, path, "helicsEndpointHasMessage"),
            endpoint_get_message: resolve!(lib, path, "helicsEndpointGetMessage"),
            message_get_time: resolve!(lib, path, "helicsMessageGetTime"),
            message_get_byte_count: resolve!(lib, path, "helicsMessageGetByteCount"),
            message_get_bytes_pointer: resolve!(lib, path, "helicsMessageGetBytesPointer"),
            message_get_source: resolve!(lib, path, "helicsMessageGetSource"),
            message_free: resolve!(lib, path, "helicsMessageFree"),
            federate_global_error: resolve!(lib, path, "helicsFederateGlobalError"),
            federate_disconnect: resolve!(lib, path, "helicsFederateDisconnect"),
            federate_free: resolve!(lib, path, "helicsFederateFree"),
            close_library: resolve!(lib, path, "helicsCloseLibrary"),
        };
        // HELICS keeps threads running inside the library until the process ends: it is
        // never unloaded.
        std::mem::forget(lib);
        let api: &'static Api = Box::leak(Box::new(api));
        // SAFETY: helicsGetVersion returns a static NUL-terminated string.
        let version = unsafe { CStr::from_ptr((api.get_version)()) }.to_string_lossy().into_owned();
        if !version.starts_with('3') {
            return Err(format!("{} is HELICS {version}; spikebus needs HELICS 3", path.display()));
        }
        Ok(Helics { api, path, version })
    }

    /// Ends HELICS's threads (after every federate is freed).
    pub fn close(&self) {
        // SAFETY: no arguments; safe to call when no federate is in use.
        unsafe { (self.api.close_library)() }
    }
}

fn c_string(what: &str, s: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("{what} `{}` contains a NUL byte", s.escape_debug()))
}

/// Runs `f` with a fresh `HelicsError` and turns a failure into `what: message`.
fn checked<T>(api: &Api, what: &str, f: impl FnOnce(Err) -> T) -> Result<T, String> {
    // SAFETY: helicsErrorInitialize has no preconditions.
    let mut err = unsafe { (api.error_initialize)() };
    let out = f(&mut err);
    if err.error_code != 0 {
        let msg = if err.message.is_null() {
            format!("error code {}", err.error_code)
        } else {
            // SAFETY: HELICS sets message to a NUL-terminated string that lives as long as its
            // error-message storage (at least until the next call on this thread).
            unsafe { CStr::from_ptr(err.message) }.to_string_lossy().into_owned()
        };
        return Err(format!("{what}: {msg}"));
    }
    Ok(out)
}

/// How the federate is made: core, broker, flags (HELICS's FederateInfo).
pub struct FederateSpec<'a> {
    pub name: &'a str,
    pub core_type: &'a str,
    pub core_init: &'a str,
    pub broker: Option<&'a str>,
    /// Flags set to true (`HELICS_FLAG_*`).
    pub flags: &'a [c_int],
    pub log_level: Option<c_int>,
}

/// A combination federate (values and messages). Disconnected and freed when dropped.
pub struct Federate {
    api: &'static Api,
    fed: Handle,
}

impl Helics {
    /// Creates the federate (its core connects to the broker now).
    pub fn federate(&self, spec: &FederateSpec) -> Result<Federate, String> {
        let api = self.api;
        // SAFETY: every handle passed below is the one just returned by HELICS and every
        // string is a live CString; errors are reported through `checked`.
        unsafe {
            let info = (api.create_federate_info)();
            let result = (|| {
                let core_type = c_string("core_type", spec.core_type)?;
                checked(api, "core_type", |e| (api.info_set_core_type)(info, core_type.as_ptr(), e))?;
                let init = c_string("core_init", spec.core_init)?;
                checked(api, "core_init", |e| (api.info_set_core_init)(info, init.as_ptr(), e))?;
                if let Some(b) = spec.broker {
                    let b = c_string("broker", b)?;
                    checked(api, "broker", |e| (api.info_set_broker)(info, b.as_ptr(), e))?;
                }
                for &flag in spec.flags {
                    checked(api, "federate flag", |e| (api.info_set_flag)(info, flag, 1, e))?;
                }
                if let Some(level) = spec.log_level {
                    checked(api, "log level", |e| (api.info_set_int_property)(info, HELICS_PROPERTY_INT_LOG_LEVEL, level, e))?;
                }
                let name = c_string("federate", spec.name)?;
                let what = format!("cannot create the HELICS federate `{}`", spec.name);
                checked(api, &what, |e| (api.create_combination_federate)(name.as_ptr(), info, e))
            })();
            (api.federate_info_free)(info);
            Ok(Federate { api, fed: result? })
        }
    }
}

/// A publication of doubles.
pub struct Publication(Handle);
/// An input subscribed to a publication key.
pub struct Input(Handle);
/// A message endpoint.
#[derive(Clone, Copy)]
pub struct Endpoint(Handle);

/// A received message: its HELICS time, source endpoint and payload.
pub struct Message {
    pub time: f64,
    pub source: String,
    pub bytes: Vec<u8>,
}

impl Federate {
    pub fn publication(&self, key: &str) -> Result<Publication, String> {
        let k = c_string("publication key", key)?;
        let units = c"";
        let what = format!("cannot register the publication `{key}`");
        // SAFETY: a live federate handle and CStrings.
        let h = checked(self.api, &what, |e| unsafe {
            (self.api.register_global_publication)(self.fed, k.as_ptr(), HELICS_DATA_TYPE_DOUBLE, units.as_ptr(), e)
        })?;
        Ok(Publication(h))
    }

    pub fn subscription(&self, key: &str) -> Result<Input, String> {
        let k = c_string("input key", key)?;
        let units = c"";
        let what = format!("cannot subscribe to `{key}`");
        // SAFETY: as above.
        let h = checked(self.api, &what, |e| unsafe { (self.api.register_subscription)(self.fed, k.as_ptr(), units.as_ptr(), e) })?;
        Ok(Input(h))
    }

    pub fn endpoint(&self, name: &str) -> Result<Endpoint, String> {
        let n = c_string("endpoint", name)?;
        let kind = c"";
        let what = format!("cannot register the endpoint `{name}`");
        // SAFETY: as above.
        let h = checked(self.api, &what, |e| unsafe { (self.api.register_global_endpoint)(self.fed, n.as_ptr(), kind.as_ptr(), e) })?;
        Ok(Endpoint(h))
    }

    /// Blocks until every federate of the federation is ready; the federate is then at time 0.
    pub fn enter_executing_mode(&self) -> Result<(), String> {
        // SAFETY: a live federate handle.
        checked(self.api, "cannot enter executing mode", |e| unsafe { (self.api.enter_executing_mode)(self.fed, e) })
    }

    /// Blocks until HELICS grants a time; returns it.
    pub fn request_time(&self, t: f64) -> Result<f64, String> {
        // SAFETY: a live federate handle.
        checked(self.api, "time request failed", |e| unsafe { (self.api.request_time)(self.fed, t, e) })
    }

    pub fn publish(&self, p: &Publication, value: f64) -> Result<(), String> {
        // SAFETY: a publication of this federate.
        checked(self.api, "publish failed", |e| unsafe { (self.api.publish_double)(p.0, value, e) })
    }

    /// The input's value if it was updated since it was last read.
    pub fn updated(&self, i: &Input) -> Result<Option<f64>, String> {
        // SAFETY: an input of this federate.
        if unsafe { (self.api.input_is_updated)(i.0) } == 0 {
            return Ok(None);
        }
        checked(self.api, "reading an input failed", |e| unsafe { (self.api.input_get_double)(i.0, e) }).map(Some)
    }

    /// Sends `bytes` to the endpoint `to`, stamped with the federate's current time.
    pub fn send(&self, from: Endpoint, to: &CStr, bytes: &[u8]) -> Result<(), String> {
        let len = c_int::try_from(bytes.len()).map_err(|_| "message too long".to_string())?;
        // SAFETY: an endpoint of this federate, a live buffer of `len` bytes, a CStr.
        checked(self.api, "sending a message failed", |e| unsafe {
            (self.api.endpoint_send_bytes_to)(from.0, bytes.as_ptr().cast(), len, to.as_ptr(), e)
        })
    }

    /// The next message waiting at the endpoint, if any.
    pub fn receive(&self, at: Endpoint) -> Option<Message> {
        // SAFETY: an endpoint of this federate; the message is read, copied and freed here.
        unsafe {
            if (self.api.endpoint_has_message)(at.0) == 0 {
                return None;
            }
            let m = (self.api.endpoint_get_message)(at.0);
            let n = usize::try_from((self.api.message_get_byte_count)(m)).unwrap_or(0);
            let p = (self.api.message_get_bytes_pointer)(m) as *const u8;
            let bytes = if n == 0 || p.is_null() { vec![] } else { std::slice::from_raw_parts(p, n).to_vec() };
            let src = (self.api.message_get_source)(m);
            let source = if src.is_null() { String::new() } else { CStr::from_ptr(src).to_string_lossy().into_owned() };
            let time = (self.api.message_get_time)(m);
            (self.api.message_free)(m);
            Some(Message { time, source, bytes })
        }
    }

    /// Tells the whole federation that this federate failed (it stops the co-simulation).
    pub fn global_error(&self, message: &str) {
        let m = CString::new(message.replace('\0', " ")).expect("no NUL left");
        // SAFETY: a live federate handle and a CString; a failure here changes nothing more.
        let _ = checked(self.api, "global error", |e| unsafe { (self.api.federate_global_error)(self.fed, 1, m.as_ptr(), e) });
    }

    /// Leaves the federation (others are then no longer held back by this federate).
    pub fn disconnect(&self) -> Result<(), String> {
        // SAFETY: a live federate handle; disconnecting twice is allowed by HELICS.
        checked(self.api, "disconnect failed", |e| unsafe { (self.api.federate_disconnect)(self.fed, e) })
    }
}

impl Drop for Federate {
    fn drop(&mut self) {
        // SAFETY: the handle is freed once, here; HELICS disconnects a federate it frees.
        unsafe {
            let _ = checked(self.api, "disconnect", |e| (self.api.federate_disconnect)(self.fed, e));
            (self.api.federate_free)(self.fed);
        }
    }
}
