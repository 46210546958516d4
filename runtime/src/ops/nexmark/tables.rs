//! The fixed vocabularies of the Nexmark generator (names, cities, states, channels and their
//! URLs), made once per process and shared out to each source subtask as its own reference-
//! counted strings (so two subtasks never contend on one string's counter).

use std::sync::{Arc, OnceLock};

use super::rng::EventRng;

/// First names of persons.
pub(super) const FIRST_NAMES: [&str; 11] =
    ["Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter"];
/// Last names of persons.
pub(super) const LAST_NAMES: [&str; 9] =
    ["Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris"];
/// Cities of persons.
pub(super) const US_CITIES: [&str; 10] =
    ["Phoenix", "Los Angeles", "San Francisco", "Boise", "Portland", "Bend", "Redmond", "Seattle", "Kent", "Cheyenne"];
/// States of persons.
pub(super) const US_STATES: [&str; 6] = ["AZ", "CA", "ID", "OR", "WA", "WY"];
/// The hot channels of bids.
pub(super) const HOT_CHANNELS: [&str; 4] = ["Google", "Facebook", "Baidu", "Apple"];
/// Number of other channels.
pub(super) const CHANNELS: usize = 10_000;

/// A URL of the form the generator gives bids, from its own random stream `seed`: three path
/// parts of 3 or 4 characters, each a letter or (one time in 13) `_`.
fn base_url(seed: u64) -> String {
    let mut rng = EventRng::seeded(seed);
    let mut url = String::with_capacity(64);
    url.push_str("https://www.nexmark.com/");
    for _ in 0..3 {
        let len = 3 + rng.below_u64(2);
        for _ in 0..len {
            url.push(if rng.below_u32(13) == 0 { '_' } else { char::from(rng.letter()) });
        }
        url.push('/');
    }
    url.push_str("item.htm?query=1");
    url
}

/// Channel `i` is `channel-i`; its URL, nine times in ten, names the channel's id.
fn channel_urls() -> &'static [(String, String)] {
    static TABLE: OnceLock<Vec<(String, String)>> = OnceLock::new();
    TABLE.get_or_init(|| {
        (0..CHANNELS)
            .map(|i| {
                let mut url = base_url(i as u64);
                if EventRng::seeded(i as u64).below_u32(10) > 0 {
                    url.push_str("&channel_id=");
                    url.push_str(&i64::from((i as i32).reverse_bits()).abs().to_string());
                }
                (format!("channel-{i}"), url)
            })
            .collect()
    })
}

/// One subtask's copy of the vocabularies.
pub(super) struct Tables {
    /// Every `First Last` name, by `first * LAST_NAMES.len() + last`.
    pub(super) names: Vec<Arc<str>>,
    /// [`US_CITIES`].
    pub(super) cities: Vec<Arc<str>>,
    /// [`US_STATES`].
    pub(super) states: Vec<Arc<str>>,
    /// [`HOT_CHANNELS`] with their URLs.
    pub(super) hot: Vec<(Arc<str>, Arc<str>)>,
    /// The other channels with their URLs.
    pub(super) channels: Vec<(Arc<str>, Arc<str>)>,
    /// The empty string (an `extra` with nothing to pad).
    pub(super) empty: Arc<str>,
}

impl Tables {
    /// Fresh copies of the shared vocabularies.
    pub(super) fn new() -> Tables {
        let arcs = |list: &[&str]| list.iter().map(|s| Arc::from(*s)).collect::<Vec<Arc<str>>>();
        let names = FIRST_NAMES
            .iter()
            .flat_map(|first| LAST_NAMES.iter().map(move |last| Arc::from(format!("{first} {last}").as_str())))
            .collect();
        let hot =
            HOT_CHANNELS.iter().enumerate().map(|(i, c)| (Arc::from(*c), Arc::from(base_url(i as u64)))).collect();
        let channels = channel_urls().iter().map(|(c, u)| (Arc::from(c.as_str()), Arc::from(u.as_str()))).collect();
        Tables { names, cities: arcs(&US_CITIES), states: arcs(&US_STATES), hot, channels, empty: Arc::from("") }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_have_the_generators_form() {
        let t = Tables::new();
        assert_eq!(t.channels.len(), CHANNELS);
        assert_eq!(&*t.channels[17].0, "channel-17");
        for (_, url) in t.hot.iter().chain(&t.channels) {
            let rest = url.strip_prefix("https://www.nexmark.com/").expect("prefix");
            let parts: Vec<&str> = rest.splitn(4, '/').collect();
            assert!(parts[..3].iter().all(|p| (3..=4).contains(&p.len())), "{url}");
            assert!(parts[3].starts_with("item.htm?query=1"), "{url}");
        }
        let with_id = t.channels.iter().filter(|(_, u)| u.contains("&channel_id=")).count();
        assert!((8_500..9_500).contains(&with_id), "{with_id} of {CHANNELS} name their channel");
    }
}
