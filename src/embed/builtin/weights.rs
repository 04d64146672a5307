//! The int8 weight matrices (`model_quantized.onnx.data`, listed in `model_quantized.onnx.json`;
//! see `scripts/lib/quantize_minilm.py`), mapped once and handed to every session as the same
//! tensors. ONNX Runtime packs weights for its int8 kernels, and packs them once for all
//! sessions only when they are shared this way. Runs use the packed copy, so once the sessions
//! are built the mapping's pages are dropped: nothing reads them again (a read would fault a
//! page back in from the file). The mapping itself lives as long as the sessions.

// The second module allowed unsafe (with transport/zrok/libziti.rs): mapping a file, wrapping
// its bytes as ONNX Runtime tensors, and one glibc setting. Each use says why it is sound.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::ptr::{self, NonNull};
use std::sync::Arc;

use ort::AsPointer;
use ort::memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType};
use ort::sys::ONNXTensorElementDataType as Element;
use ort::value::DynValue;
use serde::Deserialize;

pub struct Shared {
    pub map: Arc<Mapping>,
    pub tensors: Vec<(String, Arc<DynValue>)>,
}

#[derive(Deserialize)]
struct Entry {
    name: String,
    data_type: i32,
    dims: Vec<i64>,
    offset: usize,
    length: usize,
}

/// The shared weights of `graph`, or `None` when it has no manifest (its weights are inline,
/// as in the fp32 graph).
pub fn load(graph: &Path) -> Result<Option<Shared>, String> {
    let side = |ext: &str| {
        let mut name = graph.as_os_str().to_owned();
        name.push(ext);
        std::path::PathBuf::from(name)
    };
    let manifest = side(".json");
    if !manifest.is_file() {
        return Ok(None);
    }
    let damaged = |what: &dyn std::fmt::Display| {
        format!("the builtin embedding model's weights are damaged ({what}): run ./scripts/setup-embeddings.sh again")
    };
    let text = std::fs::read(&manifest).map_err(|e| damaged(&e))?;
    let entries: Vec<Entry> = serde_json::from_slice(&text).map_err(|e| damaged(&e))?;
    let map = Arc::new(Mapping::open(&side(".data")).map_err(|e| damaged(&e))?);
    let memory = MemoryInfo::new(AllocationDevice::CPU, 0, AllocatorType::Device, MemoryType::Default)
        .map_err(|e| damaged(&e))?;
    let allocator = Allocator::default();
    let tensors = entries
        .into_iter()
        .map(|e| tensor(&map, &memory, &allocator, e))
        .collect::<Result<_, _>>()
        .map_err(|e| damaged(&e))?;
    Ok(Some(Shared { map, tensors }))
}

/// A tensor over its bytes in the mapping, after checking the manifest against the file.
fn tensor(
    map: &Mapping,
    memory: &MemoryInfo,
    allocator: &Allocator,
    e: Entry,
) -> Result<(String, Arc<DynValue>), String> {
    let (element, size) = match e.data_type {
        1 => (Element::ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, 4),
        2 => (Element::ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8, 1),
        3 => (Element::ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8, 1),
        other => return Err(format!("{}: unknown data type {other}", e.name)),
    };
    let count = e.dims.iter().try_fold(1usize, |n, &d| usize::try_from(d).ok().and_then(|d| n.checked_mul(d)));
    let end = e.offset.checked_add(e.length);
    if count.and_then(|c| c.checked_mul(size)) != Some(e.length)
        || end.is_none_or(|end| end > map.len)
        || !e.offset.is_multiple_of(size)
    {
        return Err(format!(
            "{}: {} bytes at {} do not fit {:?} in a file of {}",
            e.name, e.length, e.offset, e.dims, map.len
        ));
    }
    let mut value = ptr::null_mut();
    // SAFETY: the range was checked to lie inside the mapping, which outlives the sessions that
    // hold this tensor (each worker keeps the mapping); ONNX Runtime only reads initializers.
    let status = unsafe {
        (ort::api().CreateTensorWithDataAsOrtValue)(
            memory.ptr(),
            map.ptr.as_ptr().cast::<u8>().add(e.offset).cast(),
            e.length,
            e.dims.as_ptr(),
            e.dims.len(),
            element,
            &mut value,
        )
    };
    // SAFETY: a status the call above just returned.
    unsafe { ort::Error::result_from_status(status) }.map_err(|err| format!("{}: {err}", e.name))?;
    let value = NonNull::new(value).ok_or_else(|| format!("{}: no tensor", e.name))?;
    // SAFETY: a tensor ONNX Runtime just made for us; the value takes ownership of it (not of
    // the bytes, which stay the mapping's).
    let value = unsafe { DynValue::from_ptr(value, Some(allocator)) };
    Ok((e.name, Arc::new(value)))
}

/// A private, read-only mapping of a whole file.
pub struct Mapping {
    ptr: NonNull<c_void>,
    len: usize,
}

// SAFETY: the memory is read-only and only read.
unsafe impl Send for Mapping {}
unsafe impl Sync for Mapping {}

impl Mapping {
    fn open(path: &Path) -> Result<Self, String> {
        let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let len = file.metadata().map_err(|e| format!("{}: {e}", path.display()))?.len();
        let len = usize::try_from(len).ok().filter(|&l| l > 0).ok_or_else(|| format!("{} is empty", path.display()))?;
        // SAFETY: a fresh private read-only mapping of an open file; failure is checked below.
        let ptr = unsafe { libc::mmap(ptr::null_mut(), len, libc::PROT_READ, libc::MAP_PRIVATE, file.as_raw_fd(), 0) };
        if ptr == libc::MAP_FAILED {
            return Err(format!("cannot map {}: {}", path.display(), std::io::Error::last_os_error()));
        }
        let ptr = NonNull::new(ptr).ok_or_else(|| format!("cannot map {}", path.display()))?;
        Ok(Self { ptr, len })
    }

    /// Drops the pages read so far from the process; a later read brings them back from the
    /// file, so the bytes never change.
    pub fn release(&self) {
        // SAFETY: the range is this mapping; MADV_DONTNEED on a private file mapping only
        // discards pages that are re-read from the file on the next access.
        unsafe { libc::madvise(self.ptr.as_ptr(), self.len, libc::MADV_DONTNEED) };
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: this mapping, unmapped once, after every session that read it is gone.
        unsafe { libc::munmap(self.ptr.as_ptr(), self.len) };
    }
}

/// ONNX Runtime allocates through glibc's malloc, whose threshold for serving a request with
/// its own mapping rises to the largest block freed so far: after loading (the graph) or one
/// long prompt (its attention scores), blocks of megabytes come from the heap and stay
/// resident. A fixed threshold keeps them mapped, so they go back to the system when freed.
pub fn fixed_mmap_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: a plain setting of the C allocator; any value is valid.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 * 1024);
    }
}
