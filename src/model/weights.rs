//! Where a model's parameters come from when it is built: a Hugging Face
//! safetensors file (import) or a seeded initializer (a fresh model). One
//! construction path serves both, so import and initialisation cannot drift
//! apart in names or shapes.

use std::collections::BTreeMap;
use std::path::PathBuf;

use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::hf::ImportError;

/// How a fresh parameter is initialised; ignored when importing.
#[derive(Clone, Copy, Debug)]
pub enum Init {
    Normal(f64),
    Zeros,
    Ones,
}

/// A provider of named parameters with known shapes.
pub trait WeightSource {
    /// The host values of parameter `name`, checked against `shape`.
    fn values(&mut self, name: &str, shape: &[usize], init: Init) -> Result<Vec<f32>, ImportError>;

    fn tensor1(
        &mut self,
        name: &str,
        shape: [usize; 1],
        init: Init,
        device: &Device,
    ) -> Result<Tensor<1>, ImportError> {
        let values = self.values(name, &shape, init)?;
        Ok(Tensor::from_data(TensorData::new(values, shape), device))
    }

    fn tensor2(
        &mut self,
        name: &str,
        shape: [usize; 2],
        init: Init,
        device: &Device,
    ) -> Result<Tensor<2>, ImportError> {
        let values = self.values(name, &shape, init)?;
        Ok(Tensor::from_data(TensorData::new(values, shape), device))
    }
}

/// GPT-2's initialisation, drawn from a seeded ChaCha stream so a seed
/// gives the same model on every machine.
pub struct SeededInit {
    rng: ChaCha8Rng,
}

impl SeededInit {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// One standard normal draw by Box–Muller.
    fn normal(&mut self) -> f64 {
        let u1: f64 = 1.0 - self.rng.random::<f64>(); // (0, 1], keeps ln finite
        let u2: f64 = self.rng.random();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

impl WeightSource for SeededInit {
    fn values(&mut self, _name: &str, shape: &[usize], init: Init) -> Result<Vec<f32>, ImportError> {
        let n = shape.iter().product();
        Ok(match init {
            Init::Zeros => vec![0.0; n],
            Init::Ones => vec![1.0; n],
            Init::Normal(std) => (0..n).map(|_| (self.normal() * std) as f32).collect(),
        })
    }
}

/// A tensor read from a file, kept on the host until the model takes it.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// Tensors read from a safetensors file, taken one by one by name. Whatever
/// is left when the model is built is reported by `finish`, so a file with
/// tensors this model does not use is refused rather than half-loaded.
pub struct FileWeights {
    pub file: PathBuf,
    pub tensors: BTreeMap<String, HostTensor>,
}

impl FileWeights {
    /// Refuses tensors the model did not take.
    pub fn finish(self) -> Result<(), ImportError> {
        match self.tensors.keys().next() {
            Some(key) => Err(ImportError::refused(
                &self.file,
                key,
                "is not a GPT-2 tensor this model uses; remove it or check the architecture",
            )),
            None => Ok(()),
        }
    }
}

impl WeightSource for FileWeights {
    fn values(&mut self, name: &str, shape: &[usize], _init: Init) -> Result<Vec<f32>, ImportError> {
        let tensor = self.tensors.remove(name).ok_or_else(|| {
            ImportError::refused(&self.file, name, "is missing; a GPT-2 checkpoint of this config has it")
        })?;
        if tensor.shape != shape {
            return Err(ImportError::refused(
                &self.file,
                name,
                format!("has shape {:?}, but config.json implies {:?}", tensor.shape, shape),
            ));
        }
        Ok(tensor.values)
    }
}
