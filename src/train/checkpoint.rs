//! The checkpoint file: a small little-endian binary format, written atomically.
//!
//! ```text
//! magic "ONEBOXTR" | version u32 | float bytes u8 | seed u64 | batch_size u64 | micro_batch u64
//! | drop_last u8 | optimizer tag u8 | 5 x f64 hyper-parameters | epoch u64 | steps u64
//! | params (u64 count, values) | first moment (u64 count, values) | second moment (...)
//! | FNV-1a 64 checksum of everything before it
//! ```
//!
//! Floats are stored as their exact bits, so a restored trainer continues bit for bit.

use std::io::Write;
use std::path::Path;

use super::Float;
use super::optim::OptimizerState;
use crate::error::{Error, Result};

const MAGIC: &[u8; 8] = b"ONEBOXTR";
const VERSION: u32 = 1;

/// Everything a trainer needs to continue, plus the settings that must match to continue
/// bit for bit.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Checkpoint<F> {
    pub(crate) seed: u64,
    pub(crate) batch_size: u64,
    pub(crate) micro_batch: u64,
    pub(crate) drop_last: bool,
    pub(crate) optimizer: (u8, [f64; 5]),
    pub(crate) epoch: u64,
    pub(crate) params: Vec<F>,
    pub(crate) state: OptimizerState<F>,
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

fn put_floats<F: Float>(out: &mut Vec<u8>, values: &[F]) {
    out.extend_from_slice(&(values.len() as u64).to_le_bytes());
    for &v in values {
        v.write_le(out);
    }
}

impl<F: Float> Checkpoint<F> {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + 3 * F::BYTES * self.params.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.push(F::BYTES as u8);
        for v in [self.seed, self.batch_size, self.micro_batch] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.push(u8::from(self.drop_last));
        out.push(self.optimizer.0);
        for h in self.optimizer.1 {
            out.extend_from_slice(&h.to_bits().to_le_bytes());
        }
        out.extend_from_slice(&self.epoch.to_le_bytes());
        out.extend_from_slice(&self.state.steps.to_le_bytes());
        put_floats(&mut out, &self.params);
        put_floats(&mut out, &self.state.first);
        put_floats(&mut out, &self.state.second);
        let sum = fnv1a(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    pub(crate) fn decode(bytes: &[u8], path: &Path) -> Result<Self> {
        let bad = |why: &str| {
            Error::Invalid(format!(
                "{}: not a usable onebox checkpoint ({why})",
                path.display()
            ))
        };
        if bytes.len() < MAGIC.len() + 8 || &bytes[..8] != MAGIC {
            return Err(bad("wrong magic bytes"));
        }
        let (body, sum) = bytes.split_at(bytes.len() - 8);
        if fnv1a(body).to_le_bytes() != sum {
            return Err(bad("checksum mismatch: the file is truncated or damaged"));
        }
        let mut r = Reader { bytes: &body[8..] };
        let version = u32::from_le_bytes(r.take::<4>().ok_or_else(|| bad("too short"))?);
        if version != VERSION {
            return Err(bad(&format!(
                "format version {version}, expected {VERSION}"
            )));
        }
        let width = r.take::<1>().ok_or_else(|| bad("too short"))?[0];
        if usize::from(width) != F::BYTES {
            return Err(bad(&format!(
                "it holds {}-byte floats, this trainer uses {}",
                width,
                F::NAME
            )));
        }
        let short = || bad("too short");
        let seed = r.u64().ok_or_else(short)?;
        let batch_size = r.u64().ok_or_else(short)?;
        let micro_batch = r.u64().ok_or_else(short)?;
        let drop_last = r.take::<1>().ok_or_else(short)?[0] != 0;
        let tag = r.take::<1>().ok_or_else(short)?[0];
        let mut hyper = [0.0; 5];
        for h in &mut hyper {
            *h = f64::from_bits(r.u64().ok_or_else(short)?);
        }
        let epoch = r.u64().ok_or_else(short)?;
        let steps = r.u64().ok_or_else(short)?;
        let params = r.floats::<F>().ok_or_else(short)?;
        let first = r.floats::<F>().ok_or_else(short)?;
        let second = r.floats::<F>().ok_or_else(short)?;
        if !r.bytes.is_empty() {
            return Err(bad("trailing bytes"));
        }
        Ok(Checkpoint {
            seed,
            batch_size,
            micro_batch,
            drop_last,
            optimizer: (tag, hyper),
            epoch,
            params,
            state: OptimizerState {
                steps,
                first,
                second,
            },
        })
    }

    /// Writes the checkpoint to `path` atomically: to a temporary file in the same directory,
    /// flushed to disk, then renamed over `path`.
    pub(crate) fn write(&self, path: &Path) -> Result<()> {
        let name = path
            .file_name()
            .ok_or_else(|| Error::Invalid(format!("{}: not a file name", path.display())))?;
        let mut tmp_name = name.to_os_string();
        tmp_name.push(format!(".tmp{}", std::process::id()));
        let tmp = path.with_file_name(tmp_name);
        let result = (|| {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&self.encode())?;
            file.sync_all()?;
            std::fs::rename(&tmp, path)
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_file(&tmp);
            return Err(Error::io(path, e));
        }
        Ok(())
    }

    pub(crate) fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Checkpoint::decode(&bytes, path)
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.bytes.split_at_checked(N)?;
        self.bytes = rest;
        head.try_into().ok()
    }

    fn u64(&mut self) -> Option<u64> {
        self.take::<8>().map(u64::from_le_bytes)
    }

    fn floats<F: Float>(&mut self) -> Option<Vec<F>> {
        let n = usize::try_from(self.u64()?).ok()?;
        let len = n.checked_mul(F::BYTES)?;
        let (head, rest) = self.bytes.split_at_checked(len)?;
        self.bytes = rest;
        head.chunks_exact(F::BYTES).map(F::read_le).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoint<f32> {
        Checkpoint {
            seed: 9,
            batch_size: 32,
            micro_batch: 8,
            drop_last: true,
            optimizer: (2, [0.9, 0.999, 1e-8, 0.01, 1.0]),
            epoch: 4,
            params: vec![1.5, -0.0, f32::MIN_POSITIVE, 3e-40],
            state: OptimizerState {
                steps: 77,
                first: vec![0.1, 0.2, 0.3, 0.4],
                second: vec![],
            },
        }
    }

    #[test]
    fn round_trips_exactly() {
        let c = sample();
        let back = Checkpoint::<f32>::decode(&c.encode(), Path::new("x")).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.params[1].to_bits(), (-0.0f32).to_bits());
    }

    #[test]
    fn refuses_damage_and_other_widths() {
        let bytes = sample().encode();
        for cut in [0, 7, 20, bytes.len() - 1] {
            assert!(Checkpoint::<f32>::decode(&bytes[..cut], Path::new("x")).is_err());
        }
        let mut flipped = bytes.clone();
        flipped[40] ^= 1;
        let e = Checkpoint::<f32>::decode(&flipped, Path::new("x")).unwrap_err();
        assert!(e.to_string().contains("checksum"), "{e}");
        let e = Checkpoint::<f64>::decode(&bytes, Path::new("x")).unwrap_err();
        assert!(e.to_string().contains("f64"), "{e}");
    }
}
