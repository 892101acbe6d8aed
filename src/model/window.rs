//! The columns of a batch whose final hidden states a caller reads.
//!
//! A position's output depends on the keys and values of every position it
//! sees but on no other position's query, attention output or MLP. So the
//! last block needs those only at the columns that are read: PPO reads the
//! response positions (three quarters of its benchmark's columns), a reward
//! model one position per sequence.

use burn::tensor::{Int, Tensor, TensorData};

/// Columns `starts[i]..starts[i] + len` of each batch row i.
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    pub starts: Vec<usize>,
    pub len: usize,
}

impl Window {
    /// The same columns `start..start + len` of each of `rows` rows.
    pub fn uniform(rows: usize, start: usize, len: usize) -> Self {
        Self {
            starts: vec![start; rows],
            len,
        }
    }

    /// Column `columns[i]` of row i.
    pub fn columns(columns: Vec<usize>) -> Self {
        Self {
            starts: columns,
            len: 1,
        }
    }

    /// `x` (`[b, t, d]`) at the window's columns: `[b, len, d]`.
    pub fn take(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, t, d] = x.dims();
        assert_eq!(self.starts.len(), b, "one window start per batch row");
        assert!(
            self.starts.iter().all(|&s| s + self.len <= t),
            "window past the last column"
        );
        match self.starts.first() {
            Some(&first) if self.starts.iter().any(|&s| s != first) => {
                let rows: Vec<usize> = (self.starts.iter().enumerate())
                    .flat_map(|(i, &s)| i * t + s..i * t + s + self.len)
                    .collect();
                select_rows(x.reshape([b * t, d]), &rows).reshape([b, self.len, d])
            }
            first => x.narrow(1, first.copied().unwrap_or(0), self.len),
        }
    }
}

/// Rows `rows` of `x` (`[n, d]`), in that order: `[rows.len(), d]`.
pub fn select_rows(x: Tensor<2>, rows: &[usize]) -> Tensor<2> {
    let indices: Vec<i64> = rows.iter().map(|&r| r as i64).collect();
    let indices = Tensor::<1, Int>::from_data(TensorData::new(indices, [rows.len()]), &x.device());
    x.select(0, indices)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    fn take(window: &Window, b: usize, t: usize) -> Vec<f32> {
        // Element (i, j, c) holds 100·i + 10·j + c.
        let x: Vec<f32> = (0..b * t * 2)
            .map(|n| (100 * (n / (2 * t)) + 10 * (n / 2 % t) + n % 2) as f32)
            .collect();
        let x = Tensor::<3>::from_data(TensorData::new(x, [b, t, 2]), &Device::flex());
        window.take(x).into_data().try_to_vec::<f32>().unwrap()
    }

    #[test]
    fn takes_each_rows_columns() {
        assert_eq!(
            take(&Window::uniform(2, 1, 2), 2, 4),
            [10., 11., 20., 21., 110., 111., 120., 121.]
        );
        assert_eq!(take(&Window::columns(vec![3, 0]), 2, 4), [30., 31., 100., 101.]);
    }

    /// The last block run at the window gives the values and gradients of
    /// the full forward pass read at the window, for the same columns in
    /// every row and for one column per row, with a left-padded row.
    #[test]
    fn the_windowed_forward_equals_the_full_one_at_the_window() {
        use crate::model::batch::PaddedBatch;
        use crate::model::weights::SeededInit;
        use crate::model::{Gpt2, Gpt2Config};
        use crate::testutil::assert_close;

        let device = Device::flex().autodiff();
        let model = Gpt2::build(&Gpt2Config::new(32, 16, 16, 2, 2), &mut SeededInit::new(5), &device).unwrap();
        let rows = vec![vec![3, 9, 4, 1, 30, 7, 2], vec![5, 6, 8, 11], vec![1, 2, 3, 4, 5, 6, 7]];
        let batch = PaddedBatch::left_padded(&rows, 0);
        let run = |window: &Window, windowed: bool| {
            let (ids, positions, mask) = (
                batch.ids_tensor(&device),
                batch.positions_tensor(&device),
                batch.mask_tensor(&device),
            );
            let hidden = if windowed {
                model.forward_window(ids, positions, mask, window)
            } else {
                window.take(model.forward(ids, positions, mask, None))
            };
            let [b, len, d] = hidden.dims();
            let weights: Vec<f32> = (0..b * len * d).map(|i| ((i * 7 % 11) as f32 - 5.0) / 5.0).collect();
            let weights = Tensor::<3>::from_data(TensorData::new(weights, [b, len, d]), &device);
            let grads = (hidden.clone() * weights).sum().backward();
            let v = |t: Tensor<2>| t.grad(&grads).unwrap().into_data().try_to_vec::<f32>().unwrap();
            [
                hidden.into_data().try_to_vec::<f32>().unwrap(),
                v(model.wte.val()),
                v(model.h[0].mlp.c_fc.weight.val()),
                v(model.h[1].attn.c_attn.weight.val()),
                v(model.h[1].mlp.c_proj.weight.val()),
            ]
        };
        for window in [Window::uniform(3, 2, 4), Window::columns(vec![6, 3, 0])] {
            let (full, windowed) = (run(&window, false), run(&window, true));
            for (what, (a, b)) in ["hidden", "wte", "h.0.mlp.c_fc", "h.1.attn.c_attn", "h.1.mlp.c_proj"]
                .iter()
                .zip(full.iter().zip(&windowed))
            {
                // Gradients reach about 40: a relative 1e-6, summed in another order.
                assert_close(what, a, b, 1e-4);
            }
        }
    }

    #[test]
    #[should_panic(expected = "past the last column")]
    fn refuses_a_window_past_the_end() {
        take(&Window::uniform(1, 3, 2), 1, 4);
    }
}
