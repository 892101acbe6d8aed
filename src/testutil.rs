//! What unit tests share.

/// Asserts that `a` and `b` have one length and differ by at most `tol`
/// element by element, naming `what` and the first element that does not.
/// A NaN on either side is never close.
pub fn assert_close(what: &str, a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len(), "{what}: lengths differ");
    if let Some(i) = a
        .iter()
        .zip(b)
        .position(|(x, y)| (x - y).is_nan() || (x - y).abs() > tol)
    {
        panic!("{what}: element {i} is {} against {} (tolerance {tol})", a[i], b[i]);
    }
}

mod tests {
    use super::assert_close;

    #[test]
    fn passes_within_the_tolerance() {
        assert_close("v", &[1.0, 2.0], &[1.05, 1.95], 0.1);
    }

    #[test]
    #[should_panic(expected = "element 1 is 2 against 2.5")]
    fn names_the_first_element_beyond_it() {
        assert_close("v", &[1.0, 2.0, 9.0], &[1.0, 2.5, 0.0], 0.1);
    }

    #[test]
    #[should_panic(expected = "element 0 is NaN")]
    fn a_nan_fails() {
        assert_close("v", &[f32::NAN], &[f32::NAN], 0.1);
    }

    #[test]
    #[should_panic(expected = "lengths differ")]
    fn a_shorter_side_fails() {
        assert_close("v", &[1.0], &[1.0, 2.0], 0.1);
    }
}
