//! The report: `report.html`, drawn from a run's [`crate::summary::Summary`] alone, with its
//! figures as inline SVG.
//!
//! [`html`] lays out the sections and their tables; [`svg`] draws the charts, knowing nothing
//! of runs, so each renderer is tested on edge-case data of its own.

pub mod html;
pub mod svg;

pub use self::html::render;
