//! The embedding tables (`embeddings.bin`, written by `scripts/lib/minilm_to_onnx.py`:
//! u32 words, u32 positions, u32 dims; per word an f32 scale and dims int8 values; per
//! position dims f32 values), read a few rows at a time. The word table is half the model and
//! a prompt needs only its tokens' rows, which the page cache serves: none of it stays in the
//! process.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

const HEADER: u64 = 12;
/// Far above any sentence embedding model's width (all-MiniLM-L6-v2: 384).
const MAX_DIMS: u32 = 8192;

pub struct Table {
    file: File,
    words: u32,
    positions: usize,
    dims: usize,
}

impl Table {
    /// The tables at `path`, checked against the file's size; `positions` at least (the
    /// longest text the tokenizer hands over).
    pub fn open(path: &Path, positions_needed: usize) -> Result<Self, String> {
        let damaged = |what: &dyn std::fmt::Display| {
            format!("{} is damaged ({what}): run ./scripts/setup-embeddings.sh again", path.display())
        };
        let file = File::open(path).map_err(|e| damaged(&e))?;
        let mut header = [0u8; HEADER as usize];
        file.read_exact_at(&mut header, 0).map_err(|e| damaged(&e))?;
        let field = |i: usize| u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
        let (words, positions, dims) = (field(0), field(4), field(8));
        let len = file.metadata().map_err(|e| damaged(&e))?.len();
        // Checked: a hostile header must not wrap around to the file's real length.
        let (w, p, d) = (u64::from(words), u64::from(positions), u64::from(dims));
        let want =
            w.checked_mul(4 + d).zip(p.checked_mul(4 * d)).and_then(|(w, p)| HEADER.checked_add(w)?.checked_add(p));
        if dims == 0 || dims > MAX_DIMS || want != Some(len) {
            return Err(damaged(&format!("{len} bytes for {words} words and {positions} positions of {dims}")));
        }
        if (positions as usize) < positions_needed {
            return Err(damaged(&format!("{positions} positions, fewer than the {positions_needed} tokens of a text")));
        }
        Ok(Self { file, words, positions: positions as usize, dims: dims as usize })
    }

    /// How many word rows the table has (token ids below it have one).
    pub fn words(&self) -> u32 {
        self.words
    }

    pub fn dims(&self) -> usize {
        self.dims
    }

    /// The model's input for `ids`: each token's word row plus its position's row.
    pub fn embed(&self, ids: &[u32]) -> Result<Vec<f32>, String> {
        let failed = |e: std::io::Error| format!("cannot read the embedding tables: {e}");
        if ids.len() > self.positions {
            return Err(format!("{} tokens, more than the model's {} positions", ids.len(), self.positions));
        }
        let word_bytes = 4 + self.dims;
        let mut bytes = vec![0u8; ids.len() * self.dims * 4];
        let positions_at = HEADER + u64::from(self.words) * word_bytes as u64;
        self.file.read_exact_at(&mut bytes, positions_at).map_err(failed)?;
        let mut out: Vec<f32> = bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        let mut row = vec![0u8; word_bytes];
        for (&id, sum) in ids.iter().zip(out.chunks_exact_mut(self.dims)) {
            if id >= self.words {
                return Err(format!("token {id} is not in the table of {}", self.words));
            }
            self.file.read_exact_at(&mut row, HEADER + u64::from(id) * word_bytes as u64).map_err(failed)?;
            let scale = f32::from_le_bytes([row[0], row[1], row[2], row[3]]);
            sum.iter_mut().zip(&row[4..]).for_each(|(s, &q)| *s += f32::from(q as i8) * scale);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::Table;

    fn table(bytes: &[u8]) -> (tempfile::NamedTempFile, Result<Table, String>) {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), bytes).unwrap();
        let table = Table::open(file.path(), 2);
        (file, table)
    }

    #[test]
    fn word_rows_are_scaled_back_and_positions_added() {
        let mut bytes = vec![2, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0];
        bytes.extend(0.5f32.to_le_bytes());
        bytes.extend([2u8, 0xfe]);
        bytes.extend(2.0f32.to_le_bytes());
        bytes.extend([1u8, 127]);
        for position in [0.25f32, 0.0, 0.0, 1.0] {
            bytes.extend(position.to_le_bytes());
        }
        let (_file, table) = table(&bytes);
        let table = table.unwrap();
        assert_eq!(table.embed(&[1, 0]).unwrap(), [2.25, 254.0, 1.0, 0.0]);
        assert!(table.embed(&[2]).unwrap_err().contains("not in the table"));
        assert!(table.embed(&[0, 0, 0]).unwrap_err().contains("positions"));
    }

    #[test]
    fn a_short_file_is_refused() {
        let (_file, table) = table(&[2, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 1]);
        assert!(table.err().unwrap().contains("setup-embeddings.sh"));
    }

    #[test]
    fn a_header_that_wraps_around_or_is_too_wide_or_too_short_is_refused() {
        // 2^31 positions of 2^31 dims: 2^64 bytes, which wraps to the header's 12 unchecked.
        let (_file, t) = table(&[0, 0, 0, 0, 0, 0, 0, 0x80, 0, 0, 0, 0x80]);
        assert!(t.err().unwrap().contains("damaged"));
        let mut wide = vec![0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0x01, 0];
        wide.extend(vec![0u8; 4 * 65536]);
        let (_file, t) = table(&wide);
        assert!(t.err().unwrap().contains("damaged"), "65536 dims");
        let mut short = vec![0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0];
        short.extend(0f32.to_le_bytes());
        let (_file, t) = table(&short);
        assert!(t.err().unwrap().contains("fewer than the 2 tokens"));
    }
}
