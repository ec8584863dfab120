//! The endpoint page's two charts, as geometry for inline SVG: success rate
//! per hour (bars) and mean attempt latency per hour (a line). Pure: rows in,
//! shapes out. Server-side SVG keeps the page script-free for its charts
//! and the CSP strict (no chart library, no inline style: the template
//! writes these numbers into SVG attributes, styled by class).

use chrono::{DateTime, DurationRound, Utc};
use serde::Serialize;

use crate::store::HourlyRow;

/// The drawing area of each chart, in SVG user units.
pub const WIDTH: f64 = 480.0;
pub const HEIGHT: f64 = 120.0;

/// The start of the hour holding `t`.
pub fn hour_start(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(chrono::Duration::hours(1)).unwrap_or(t)
}

/// One hour of the charts, with what its shapes say in words.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Hour {
    pub hour: DateTime<Utc>,
    /// Deliveries created in the hour that succeeded / are dead letters.
    pub success: i64,
    pub failed: i64,
    /// Percent of the finished ones that succeeded; `None`: none finished.
    pub rate: Option<f64>,
    /// Mean and slowest attempt in the hour, ms; `None`: no attempt.
    pub mean_ms: Option<f64>,
    pub max_ms: Option<i32>,
    /// The success-rate bar: x, y, width, height; `class` by rate.
    pub bar: Option<Bar>,
    /// The latency point: x, y.
    pub point: Option<(f64, f64)>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Bar {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
    pub class: &'static str,
}

/// Both charts over `hours` hours from `since`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Charts {
    pub hours: Vec<Hour>,
    /// The latency line's `points` attribute.
    pub latency_points: String,
    /// The latency axis' top, ms.
    pub latency_top_ms: f64,
    pub any_rate: bool,
    pub any_latency: bool,
}

impl Charts {
    pub fn build(rows: &[HourlyRow], since: DateTime<Utc>, hours: usize) -> Charts {
        let mut out: Vec<Hour> = (0..hours)
            .map(|i| Hour {
                hour: since + chrono::Duration::hours(i as i64),
                success: 0,
                failed: 0,
                rate: None,
                mean_ms: None,
                max_ms: None,
                bar: None,
                point: None,
            })
            .collect();
        let slot = |h: DateTime<Utc>| -> Option<usize> {
            let i = (h - since).num_hours();
            (0..hours as i64).contains(&i).then_some(i as usize)
        };
        for r in rows {
            match r {
                HourlyRow::Count { hour, status, n } => {
                    if let Some(i) = slot(*hour) {
                        match status.as_str() {
                            "success" => out[i].success += n,
                            "failed" => out[i].failed += n,
                            _ => {}
                        }
                    }
                }
                HourlyRow::Latency {
                    hour,
                    mean_ms,
                    max_ms,
                    ..
                } => {
                    if let Some(i) = slot(*hour) {
                        out[i].mean_ms = Some(*mean_ms);
                        out[i].max_ms = Some(*max_ms);
                    }
                }
            }
        }
        let step = WIDTH / hours.max(1) as f64;
        let top = out
            .iter()
            .filter_map(|h| h.mean_ms)
            .fold(0.0_f64, f64::max)
            .max(1.0);
        let top = nice_ceiling(top);
        let mut points = vec![];
        for (i, h) in out.iter_mut().enumerate() {
            let finished = h.success + h.failed;
            if finished > 0 {
                let rate = 100.0 * h.success as f64 / finished as f64;
                h.rate = Some((rate * 10.0).round() / 10.0);
                let bh = (HEIGHT * rate / 100.0).max(2.0);
                h.bar = Some(Bar {
                    x: round1(i as f64 * step + 1.0),
                    y: round1(HEIGHT - bh),
                    w: round1(step - 2.0),
                    h: round1(bh),
                    class: if rate >= 99.0 {
                        "good"
                    } else if rate >= 90.0 {
                        "warn"
                    } else {
                        "bad"
                    },
                });
            }
            if let Some(m) = h.mean_ms {
                let p = (
                    round1(i as f64 * step + step / 2.0),
                    // A little room at the top, so the dot of the highest hour shows whole.
                    round1(HEIGHT - (HEIGHT - 4.0) * m / top),
                );
                points.push(format!("{},{}", p.0, p.1));
                h.point = Some(p);
            }
        }
        Charts {
            any_rate: out.iter().any(|h| h.bar.is_some()),
            any_latency: !points.is_empty(),
            hours: out,
            latency_points: points.join(" "),
            latency_top_ms: top,
        }
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// The smallest 1, 2 or 5 times a power of ten at or above `x`.
fn nice_ceiling(x: f64) -> f64 {
    let p = 10f64.powf(x.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|v| *v >= x)
        .unwrap_or(10.0 * p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_become_bars_and_latency_a_line() {
        let since = hour_start(Utc::now());
        let h1 = since + chrono::Duration::hours(1);
        let rows = vec![
            HourlyRow::Count {
                hour: since,
                status: "success".into(),
                n: 9,
            },
            HourlyRow::Count {
                hour: since,
                status: "failed".into(),
                n: 1,
            },
            HourlyRow::Count {
                hour: h1,
                status: "success".into(),
                n: 5,
            },
            HourlyRow::Count {
                hour: h1,
                status: "pending".into(),
                n: 5,
            },
            HourlyRow::Latency {
                hour: h1,
                attempts: 5,
                mean_ms: 40.0,
                max_ms: 90,
            },
            // Outside the window: ignored.
            HourlyRow::Count {
                hour: since - chrono::Duration::hours(1),
                status: "failed".into(),
                n: 7,
            },
        ];
        let c = Charts::build(&rows, since, 4);
        assert_eq!(c.hours.len(), 4);
        assert_eq!(c.hours[0].rate, Some(90.0));
        assert_eq!(c.hours[0].bar.as_ref().unwrap().class, "warn");
        assert_eq!(c.hours[1].rate, Some(100.0));
        assert_eq!(c.hours[1].bar.as_ref().unwrap().h, HEIGHT);
        assert!(c.hours[2].bar.is_none());
        assert_eq!(c.latency_top_ms, 50.0);
        assert_eq!(c.hours[1].point, Some((180.0, 27.2)));
        assert_eq!(c.latency_points, "180,27.2");
        assert!(c.any_rate && c.any_latency);
    }

    #[test]
    fn nice_ceilings() {
        assert_eq!(nice_ceiling(1.0), 1.0);
        assert_eq!(nice_ceiling(3.0), 5.0);
        assert_eq!(nice_ceiling(120.0), 200.0);
        assert_eq!(nice_ceiling(999.0), 1000.0);
    }
}
