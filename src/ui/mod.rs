//! The workbench's front end: plain state (`app`), pure key and update
//! functions, one view per pane, the terminal and the loop that joins them.

pub mod app;
pub mod driver;
pub mod history;
pub mod keys;
pub mod terminal;
pub mod update;
pub mod view;
pub mod words;
