//! Drawing: one file per pane, each a function of the `App` and an area.

pub mod charts;
pub mod compare;
pub mod constitution;
pub mod eval;
pub mod overlays;
pub mod screen;
pub mod stages;
pub mod status;
pub mod theme;

pub use screen::draw;
