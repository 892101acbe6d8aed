//! Reading and writing `model.safetensors`: GPT-2's tensor names (with or
//! without transformers' `transformer.` prefix), f32/f16/bf16 on read, f32
//! on write, and the `format: pt` metadata transformers requires.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use safetensors::{Dtype, SafeTensors, tensor::TensorView};

use super::ImportError;
use crate::fsutil::write_atomic;
use crate::model::weights::{FileWeights, HostTensor};

/// Buffers older GPT-2 checkpoints store beside the weights (the causal
/// mask); they carry no parameters.
fn is_buffer(name: &str) -> bool {
    name.ends_with(".attn.bias") || name.ends_with(".attn.masked_bias")
}

/// Reads every tensor of the file into host memory, GPT-2's names
/// normalised (`h.0.attn.c_attn.weight`, `score.weight`, ...; other
/// architectures' names are kept as they are).
pub fn read(path: &Path) -> Result<FileWeights, ImportError> {
    let bytes = std::fs::read(path).map_err(|e| ImportError::io(path, e))?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| ImportError::refused(path, "header", format!("is not a valid safetensors header: {e}")))?;
    let mut tensors = BTreeMap::new();
    for (name, view) in st.iter() {
        let short = name.strip_prefix("transformer.").unwrap_or(name);
        if is_buffer(short) {
            continue;
        }
        let values = to_f32(&view).ok_or_else(|| {
            ImportError::refused(
                path,
                name,
                format!("has dtype {:?}; supported: F32, F16, BF16, F64", view.dtype()),
            )
        })?;
        tensors.insert(
            short.to_string(),
            HostTensor {
                shape: view.shape().to_vec(),
                values,
            },
        );
    }
    Ok(FileWeights {
        file: path.to_path_buf(),
        tensors,
    })
}

fn to_f32(view: &TensorView<'_>) -> Option<Vec<f32>> {
    let data = view.data();
    Some(match view.dtype() {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F64 => data
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32)
            .collect(),
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => data
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        _ => return None,
    })
}

/// Writes f32 tensors under the given names, atomically.
pub fn write(path: &Path, tensors: &[(String, Vec<usize>, Vec<f32>)]) -> std::io::Result<()> {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, shape, _), data)| {
            let view = TensorView::new(Dtype::F32, shape.clone(), data).expect("shape matches data length");
            (name.clone(), view)
        })
        .collect();
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    let out = safetensors::serialize(views, Some(metadata)).map_err(std::io::Error::other)?;
    write_atomic(path, &out)
}
