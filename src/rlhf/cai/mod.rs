//! Constitutional AI: a constitution of principles, a critic that
//! critiques and revises against them, and the SL-CAI stage that
//! fine-tunes on the revisions and labels pairs by principle for RL-CAI.

pub mod constitution;
pub mod critic;
pub mod stage;
