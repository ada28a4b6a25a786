//! Finding NVIDIA's run-time libraries, NVRTC (the kernel compiler) and cuBLAS, of whichever
//! CUDA is installed, for the card at hand.
//!
//! The driver (`libcuda.so.1`) is one library whatever the CUDA version; NVRTC and cuBLAS are
//! versioned by CUDA major (`libnvrtc.so.12`, `libnvrtc.so.13`), several may be installed, and
//! not every one serves every card: CUDA 13 dropped compute capability 7.0 (the V100), so a V100
//! needs CUDA 12's NVRTC while an H100 may use either. onebox therefore loads them itself:
//! it looks for each major version (newest first) on the loader's path and in the usual CUDA
//! directories (`$CUDA_HOME`, `$CUDA_PATH`, `/usr/local/cuda*/lib64`), keeps the NVRTC whose
//! supported architectures include the card, and the cuBLAS of the same major version.
//!
//! Only a handful of functions are used, all with C signatures that have not changed since
//! CUDA 11; each is resolved once and kept with the library that owns it.

use std::ffi::{CString, c_char, c_int, c_void};
use std::path::PathBuf;
use std::sync::OnceLock;

use libloading::Library;

/// CUDA majors we know how to use, newest first.
const MAJORS: [u32; 3] = [13, 12, 11];

/// Where to look for `file`: the loader's own search first (bare name), then CUDA's usual places.
fn candidates(file: &str) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = ["CUDA_HOME", "CUDA_PATH", "CUDA_ROOT"]
        .iter()
        .filter_map(std::env::var_os)
        .map(|d| PathBuf::from(d).join("lib64"))
        .collect();
    dirs.push("/usr/local/cuda/lib64".into());
    let mut versioned: Vec<PathBuf> = std::fs::read_dir("/usr/local")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("cuda-"))
        })
        .map(|p| p.join("lib64"))
        .collect();
    versioned.sort();
    versioned.reverse();
    dirs.extend(versioned);
    dirs.push("/usr/lib/x86_64-linux-gnu".into());
    std::iter::once(PathBuf::from(file))
        .chain(dirs.into_iter().map(|d| d.join(file)))
        .collect()
}

/// The first copy of `lib<name>.so.<major>` that loads.
fn open(name: &str, major: u32) -> Option<Library> {
    candidates(&format!("lib{name}.so.{major}"))
        .into_iter()
        .find_map(|path| {
            // SAFETY: loading NVIDIA's libraries runs their initialisers, which have no
            // preconditions; nothing else is called until the symbols are resolved below.
            unsafe { Library::new(&path) }.ok()
        })
}

/// Resolves `name` in `lib` as a `T` (a function pointer type).
///
/// SAFETY (for callers): `T` must be the function's true C signature.
unsafe fn symbol<T: Copy>(lib: &Library, name: &str) -> Option<T> {
    unsafe { lib.get::<T>(name.as_bytes()).ok().map(|s| *s) }
}

type NvrtcProgram = *mut c_void;

/// NVRTC, the run-time CUDA C++ compiler, of one CUDA major version.
pub(crate) struct Nvrtc {
    major: u32,
    archs: Vec<i32>,
    create: unsafe extern "C" fn(
        *mut NvrtcProgram,
        *const c_char,
        *const c_char,
        c_int,
        *const *const c_char,
        *const *const c_char,
    ) -> c_int,
    compile: unsafe extern "C" fn(NvrtcProgram, c_int, *const *const c_char) -> c_int,
    ptx_size: unsafe extern "C" fn(NvrtcProgram, *mut usize) -> c_int,
    ptx: unsafe extern "C" fn(NvrtcProgram, *mut c_char) -> c_int,
    log_size: unsafe extern "C" fn(NvrtcProgram, *mut usize) -> c_int,
    log: unsafe extern "C" fn(NvrtcProgram, *mut c_char) -> c_int,
    destroy: unsafe extern "C" fn(*mut NvrtcProgram) -> c_int,
    _lib: Library,
}

// SAFETY: NVRTC's functions are thread-safe for distinct programs (documented by NVIDIA);
// the struct holds only function pointers and the library that owns them.
unsafe impl Send for Nvrtc {}
unsafe impl Sync for Nvrtc {}

impl Nvrtc {
    fn load(major: u32) -> Option<Nvrtc> {
        let lib = open("nvrtc", major)?;
        // SAFETY: each type below is the function's documented C signature.
        unsafe {
            let num: unsafe extern "C" fn(*mut c_int) -> c_int =
                symbol(&lib, "nvrtcGetNumSupportedArchs")?;
            let get: unsafe extern "C" fn(*mut c_int) -> c_int =
                symbol(&lib, "nvrtcGetSupportedArchs")?;
            let mut n = 0;
            if num(&mut n) != 0 || n <= 0 {
                return None;
            }
            let mut archs = vec![0; n as usize];
            if get(archs.as_mut_ptr()) != 0 {
                return None;
            }
            Some(Nvrtc {
                major,
                archs,
                create: symbol(&lib, "nvrtcCreateProgram")?,
                compile: symbol(&lib, "nvrtcCompileProgram")?,
                ptx_size: symbol(&lib, "nvrtcGetPTXSize")?,
                ptx: symbol(&lib, "nvrtcGetPTX")?,
                log_size: symbol(&lib, "nvrtcGetProgramLogSize")?,
                log: symbol(&lib, "nvrtcGetProgramLog")?,
                destroy: symbol(&lib, "nvrtcDestroyProgram")?,
                _lib: lib,
            })
        }
    }

    /// The CUDA major version of this NVRTC.
    pub(crate) fn major(&self) -> u32 {
        self.major
    }

    /// Compiles CUDA C++ `source` to PTX for compute capability `cc`.
    pub(crate) fn compile_ptx(&self, source: &str, cc: (u32, u32)) -> Result<String, String> {
        let src =
            CString::new(source).map_err(|_| "kernel source contains a NUL byte".to_string())?;
        let name = c"onebox.cu";
        let arch = CString::new(format!("--gpu-architecture=compute_{}{}", cc.0, cc.1))
            .map_err(|e| e.to_string())?;
        // No --use_fast_math: its pow() is exp2(y * log2(x)), NaN for any negative base.
        let options = [arch.as_ptr(), c"--std=c++17".as_ptr()];
        let mut prog: NvrtcProgram = std::ptr::null_mut();
        // SAFETY: valid NUL-terminated strings that outlive the calls; `prog` is created,
        // used and destroyed here only.
        unsafe {
            let rc = (self.create)(
                &mut prog,
                src.as_ptr(),
                name.as_ptr(),
                0,
                std::ptr::null(),
                std::ptr::null(),
            );
            if rc != 0 {
                return Err(format!("nvrtcCreateProgram failed with code {rc}"));
            }
            let compiled = (self.compile)(prog, options.len() as c_int, options.as_ptr());
            let result = if compiled != 0 {
                let mut size = 0usize;
                (self.log_size)(prog, &mut size);
                let mut log = vec![0u8; size.max(1)];
                (self.log)(prog, log.as_mut_ptr() as *mut c_char);
                Err(format!(
                    "NVRTC {} could not compile a kernel for sm_{}{}: {}",
                    self.major,
                    cc.0,
                    cc.1,
                    String::from_utf8_lossy(&log).trim_end_matches('\0')
                ))
            } else {
                let mut size = 0usize;
                (self.ptx_size)(prog, &mut size);
                let mut ptx = vec![0u8; size.max(1)];
                (self.ptx)(prog, ptx.as_mut_ptr() as *mut c_char);
                Ok(String::from_utf8_lossy(&ptx)
                    .trim_end_matches('\0')
                    .to_string())
            };
            (self.destroy)(&mut prog);
            result
        }
    }
}

/// Every NVRTC that loads here, newest first.
fn all_nvrtc() -> &'static [Nvrtc] {
    static ALL: OnceLock<Vec<Nvrtc>> = OnceLock::new();
    ALL.get_or_init(|| MAJORS.iter().filter_map(|&m| Nvrtc::load(m)).collect())
}

/// The newest NVRTC that can compile for compute capability `cc`.
pub(crate) fn nvrtc_for(cc: (u32, u32)) -> Result<&'static Nvrtc, String> {
    let arch = (cc.0 * 10 + cc.1) as i32;
    let all = all_nvrtc();
    all.iter().find(|n| n.archs.contains(&arch)).ok_or_else(|| {
        if all.is_empty() {
            "no NVRTC library (libnvrtc.so.11/12/13) was found: install the CUDA toolkit's NVRTC \
             or set CUDA_HOME"
                .to_string()
        } else {
            let found: Vec<String> = all.iter().map(|n| format!("CUDA {}", n.major)).collect();
            format!(
                "no installed NVRTC supports sm_{}{} (found {}); CUDA 13 dropped compute capability 7.0: \
                 install CUDA 12's NVRTC for a V100",
                cc.0,
                cc.1,
                found.join(", ")
            )
        }
    })
}

/// The opaque cuBLAS handle.
pub(crate) type CublasHandle = *mut c_void;

type Gemm<T> = unsafe extern "C" fn(
    CublasHandle,
    c_int,
    c_int,
    c_int,
    c_int,
    c_int,
    *const T,
    *const T,
    c_int,
    *const T,
    c_int,
    *const T,
    *mut T,
    c_int,
) -> c_int;

/// cuBLAS of one CUDA major version: the few functions onebox calls.
pub(crate) struct Cublas {
    pub(crate) create: unsafe extern "C" fn(*mut CublasHandle) -> c_int,
    pub(crate) destroy: unsafe extern "C" fn(CublasHandle) -> c_int,
    pub(crate) set_stream: unsafe extern "C" fn(CublasHandle, *mut c_void) -> c_int,
    pub(crate) sgemm: Gemm<f32>,
    pub(crate) dgemm: Gemm<f64>,
    _lib: Library,
}

// SAFETY: function pointers plus the library owning them; cuBLAS handles are used by one
// thread at a time (each GPU worker owns its handles).
unsafe impl Send for Cublas {}
unsafe impl Sync for Cublas {}

impl Cublas {
    fn load(major: u32) -> Option<Cublas> {
        let lib = open("cublas", major)?;
        // SAFETY: each type is the function's documented C signature (the `_v2` API).
        unsafe {
            Some(Cublas {
                create: symbol(&lib, "cublasCreate_v2")?,
                destroy: symbol(&lib, "cublasDestroy_v2")?,
                set_stream: symbol(&lib, "cublasSetStream_v2")?,
                sgemm: symbol(&lib, "cublasSgemm_v2")?,
                dgemm: symbol(&lib, "cublasDgemm_v2")?,
                _lib: lib,
            })
        }
    }
}

/// The cuBLAS to use with compute capability `cc`: the same CUDA major as its NVRTC.
pub(crate) fn cublas_for(cc: (u32, u32)) -> Result<&'static Cublas, String> {
    static ALL: OnceLock<Vec<(u32, Cublas)>> = OnceLock::new();
    let major = nvrtc_for(cc)?.major();
    let all = ALL.get_or_init(|| {
        MAJORS
            .iter()
            .filter_map(|&m| Some((m, Cublas::load(m)?)))
            .collect()
    });
    all.iter()
        .find(|(m, _)| *m == major)
        .map(|(_, c)| c)
        .ok_or_else(|| {
            format!("cuBLAS of CUDA {major} (libcublas.so.{major}) was not found beside its NVRTC")
        })
}

#[cfg(test)]
mod tests {
    #[test]
    fn candidates_try_the_loader_first_then_cuda_directories() {
        let c = super::candidates("libnvrtc.so.12");
        assert_eq!(c[0], std::path::PathBuf::from("libnvrtc.so.12"));
        assert!(c.iter().any(|p| p.starts_with("/usr/local/cuda/lib64")));
    }

    #[test]
    fn without_nvrtc_the_error_says_what_to_install() {
        if !super::all_nvrtc().is_empty() {
            eprintln!("skipped: an NVRTC is installed here");
            return;
        }
        let e = super::nvrtc_for((9, 0)).err().unwrap_or_default();
        assert!(e.contains("NVRTC") && e.contains("CUDA_HOME"), "{e}");
    }
}
