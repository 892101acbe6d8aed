//! What the CPU backend's fused operations share: an f32 tensor read as a
//! slice, and a new f32 tensor to write into.

use burn::backend::flex::FlexTensor;
use burn::tensor::{DType, Shape, TensorData};

/// The elements of a contiguous f32 tensor.
pub fn f32s(t: &FlexTensor) -> &[f32] {
    assert_eq!(t.dtype(), DType::F32, "the fused CPU operations run on f32 tensors");
    t.as_slice::<f32>().expect("contiguous")
}

/// A zero-filled f32 tensor. `FlexTensor::empty` allocates bytes and then
/// copies them into a second, aligned allocation; a vector of f32 is
/// aligned for f32 already and becomes the tensor's storage as it is.
pub fn zeros(shape: Shape) -> FlexTensor {
    let n = shape.num_elements();
    FlexTensor::from_data(TensorData::new(vec![0.0f32; n], shape))
}
