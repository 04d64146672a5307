//! The int8 weight matrices (`model_quantized.onnx.data`, listed in `model_quantized.onnx.json`;
//! see `scripts/lib/quantize_minilm.py`), read once and handed to every session as the same
//! tensors, so the sessions hold one copy of the weights between them instead of one each.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use ort::value::{DynValue, Tensor};
use serde::Deserialize;

/// The weights every session is given, by initializer name.
pub type Shared = Vec<(String, Arc<DynValue>)>;

#[derive(Deserialize)]
struct Entry {
    name: String,
    data_type: i32,
    dims: Vec<i64>,
    offset: u64,
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
    let data = File::open(side(".data")).map_err(|e| damaged(&e))?;
    entries.into_iter().map(|e| tensor(&data, e)).collect::<Result<_, _>>().map(Some).map_err(|e| damaged(&e))
}

/// One tensor, read straight into its own buffer (a copy of the whole file first would stay
/// in the allocator's pages), after checking the manifest's dims against its length.
fn tensor(data: &File, e: Entry) -> Result<(String, Arc<DynValue>), String> {
    let count = e.dims.iter().try_fold(1usize, |n, &d| usize::try_from(d).ok().and_then(|d| n.checked_mul(d)));
    if count != Some(e.length) {
        return Err(format!("{}: {} bytes do not fit {:?}", e.name, e.length, e.dims));
    }
    // Checked against the file before anything is allocated: a damaged manifest must not ask
    // for more memory than the weights file holds.
    let size = data.metadata().map_err(|err| format!("{}: {err}", e.name))?.len();
    if e.offset.checked_add(e.length as u64).is_none_or(|end| end > size) {
        return Err(format!("{}: {} bytes at {} in a file of {size}", e.name, e.length, e.offset));
    }
    let mut bytes = vec![0u8; e.length];
    data.read_exact_at(&mut bytes, e.offset).map_err(|err| format!("{}: {err}", e.name))?;
    let value = match e.data_type {
        2 => Tensor::from_array((e.dims, bytes)).map(Tensor::into_dyn),
        // In place: u8 and i8 have the same layout.
        3 => Tensor::from_array((e.dims, bytes.into_iter().map(|b| b as i8).collect::<Vec<_>>())).map(Tensor::into_dyn),
        other => return Err(format!("{}: data type {other} is not an int8 weight", e.name)),
    }
    .map_err(|err| format!("{}: {err}", e.name))?;
    Ok((e.name, Arc::new(value)))
}

#[cfg(test)]
mod tests {
    use super::{Entry, tensor};

    #[test]
    fn an_entry_larger_than_the_file_is_refused_before_anything_is_allocated() {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), [0u8; 16]).unwrap();
        let huge = 1usize << 40;
        let entry = Entry { name: "w".into(), data_type: 2, dims: vec![huge as i64], offset: 0, length: huge };
        let err = tensor(file.as_file(), entry).err().unwrap();
        assert!(err.contains("in a file of 16"), "{err}");
        let past = Entry { name: "w".into(), data_type: 2, dims: vec![8], offset: u64::MAX - 2, length: 8 };
        assert!(tensor(file.as_file(), past).is_err());
    }
}
