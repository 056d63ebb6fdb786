//! Directions of traffic and a value per direction.

use std::fmt;
use std::ops::{Index, IndexMut};

/// A direction of traffic relative to an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Traffic arriving at the endpoint.
    Ingress,
    /// Traffic leaving the endpoint.
    Egress,
}

impl Direction {
    /// Both directions: ingress, then egress.
    pub const ALL: [Direction; 2] = [Direction::Ingress, Direction::Egress];
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        })
    }
}

/// One value for each [`Direction`], indexed by direction.
///
/// ```
/// use calico_policy::{Direction, PerDirection};
///
/// let mut hits = PerDirection::<u32>::default();
/// hits[Direction::Egress] += 1;
/// assert_eq!(hits.ingress, 0);
/// assert_eq!(hits[Direction::Egress], 1);
/// assert_eq!(hits.iter().map(|(d, n)| (d, *n)).last(), Some((Direction::Egress, 1)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
pub struct PerDirection<T> {
    /// The value for [`Direction::Ingress`].
    pub ingress: T,
    /// The value for [`Direction::Egress`].
    pub egress: T,
}

impl<T> PerDirection<T> {
    /// The value of each direction computed by `f`.
    pub fn from_fn(mut f: impl FnMut(Direction) -> T) -> PerDirection<T> {
        PerDirection {
            ingress: f(Direction::Ingress),
            egress: f(Direction::Egress),
        }
    }

    /// The value for `dir`.
    pub fn get(&self, dir: Direction) -> &T {
        match dir {
            Direction::Ingress => &self.ingress,
            Direction::Egress => &self.egress,
        }
    }

    /// The value for `dir`, mutably.
    pub fn get_mut(&mut self, dir: Direction) -> &mut T {
        match dir {
            Direction::Ingress => &mut self.ingress,
            Direction::Egress => &mut self.egress,
        }
    }

    /// Each direction with its value: ingress, then egress.
    pub fn iter(&self) -> impl Iterator<Item = (Direction, &T)> {
        [
            (Direction::Ingress, &self.ingress),
            (Direction::Egress, &self.egress),
        ]
        .into_iter()
    }

    /// The values mapped by `f`.
    pub fn map<U>(self, mut f: impl FnMut(Direction, T) -> U) -> PerDirection<U> {
        PerDirection {
            ingress: f(Direction::Ingress, self.ingress),
            egress: f(Direction::Egress, self.egress),
        }
    }
}

impl<T> Index<Direction> for PerDirection<T> {
    type Output = T;

    fn index(&self, dir: Direction) -> &T {
        self.get(dir)
    }
}

impl<T> IndexMut<Direction> for PerDirection<T> {
    fn index_mut(&mut self, dir: Direction) -> &mut T {
        self.get_mut(dir)
    }
}
