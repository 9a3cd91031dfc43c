//! Loading: a hand walk over toml's spanned tree, so every error names file, line and key.

use super::write::at_text;
use super::*;

pub(super) type Val<'i> = Spanned<DeValue<'i>>;
pub(super) type Res<T> = Result<T, ScenarioError>;

/// The text being loaded, for turning byte offsets into lines.
pub(super) struct Doc<'s> {
    file: &'s str,
    line_starts: Vec<usize>,
}

impl<'s> Doc<'s> {
    pub(super) fn new(file: &'s str, text: &str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Doc { file, line_starts }
    }

    fn line(&self, offset: usize) -> u32 {
        self.line_starts.partition_point(|&s| s <= offset).max(1) as u32
    }

    pub(super) fn err(
        &self,
        span: Range<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> ScenarioError {
        let key = key.into();
        ScenarioError {
            file: self.file.to_owned(),
            line: self.line(span.start),
            key: if key.is_empty() {
                "(document)".into()
            } else {
                key
            },
            message: message.into(),
        }
    }
}

/// Best-effort key path of a syntax error at `offset`: the enclosing table header plus the key on
/// the line, e.g. `fault[1].at`.
pub(super) fn key_at(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let mut header = String::new();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut key = String::new();
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        let t = line.trim();
        let on_error_line = offset < pos + line.len() || pos + line.len() == text.len();
        if t.starts_with('[') {
            let name = t
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("")
                .trim();
            let plain = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if on_error_line && !plain {
                // A broken header: name it as written.
                return t.chars().take(40).collect();
            }
            if t.starts_with("[[") {
                let n = counts.entry(name.to_owned()).or_insert(0);
                header = format!("{name}[{n}]");
                *n += 1;
            } else {
                header = name.to_owned();
            }
        } else if on_error_line && let Some((k, _)) = t.split_once('=') {
            let k = k.trim();
            if !k.is_empty() && !k.contains(['"', '\'', '{', '[', '#']) {
                key = k.to_owned();
            }
        }
        if on_error_line {
            break;
        }
        pos += line.len();
    }
    match (header.is_empty(), key.is_empty()) {
        (true, true) => "(document)".into(),
        (true, false) => key,
        (false, true) => header,
        (false, false) => format!("{header}.{key}"),
    }
}

pub(super) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// The closest of `candidates` to `word`, if it is a plausible typo.
pub(super) fn suggest<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut prev: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut cur = vec![i + 1; b.len() + 1];
            for (j, cb) in b.iter().enumerate() {
                cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                    .min(prev[j + 1] + 1)
                    .min(cur[j] + 1);
            }
            prev = cur;
        }
        prev[b.len()]
    }
    if word.chars().count() > 64 {
        return None;
    }
    candidates
        .iter()
        .map(|c| (distance(word, c), *c))
        .filter(|(d, c)| *d <= 2 && *d < c.len())
        .min()
        .map(|(_, c)| c)
}

pub(super) fn one_of(candidates: &[&str]) -> String {
    candidates.join(", ")
}

/// A value with its key path.
#[derive(Clone, Copy)]
pub(super) struct Field<'a, 'i, 's> {
    doc: &'a Doc<'s>,
    path: &'a str,
    v: &'a Val<'i>,
}

/// A table whose keys have been checked against an allowed list.
pub(super) struct Table<'a, 'i, 's> {
    doc: &'a Doc<'s>,
    path: String,
    span: Range<usize>,
    map: &'a DeTable<'i>,
    /// Key paths, kept alive for the `Field`s handed out.
    paths: Vec<(&'a str, String)>,
}

impl<'a, 'i, 's> Field<'a, 'i, 's> {
    pub(super) fn err(&self, message: impl Into<String>) -> ScenarioError {
        self.doc.err(self.v.span(), self.path, message)
    }

    fn wrong(&self, expected: &str) -> ScenarioError {
        self.err(format!(
            "expected {expected}, found {}",
            describe(self.v.get_ref())
        ))
    }

    fn str(&self) -> Res<&'a str> {
        match self.v.get_ref() {
            DeValue::String(s) => Ok(s.as_ref()),
            _ => Err(self.wrong("a string")),
        }
    }

    /// An integer in [lo, hi].
    fn int(&self, lo: u64, hi: u64) -> Res<u64> {
        let DeValue::Integer(i) = self.v.get_ref() else {
            return Err(self.wrong("an integer"));
        };
        let n = i128::from_str_radix(i.as_str(), i.radix())
            .map_err(|_| self.err("integer out of range"))?;
        if n < lo as i128 || n > hi as i128 {
            return Err(self.err(format!("{n} is out of range: expected {lo} to {hi}")));
        }
        Ok(n as u64)
    }

    fn u32(&self, lo: u32, hi: u32) -> Res<u32> {
        self.int(lo as u64, hi as u64).map(|n| n as u32)
    }

    /// A number (integer or float), finite.
    fn number(&self) -> Res<f64> {
        let v = match self.v.get_ref() {
            DeValue::Float(f) => f
                .as_str()
                .parse::<f64>()
                .map_err(|_| self.err("invalid float"))?,
            DeValue::Integer(i) => {
                let n = i64::from_str_radix(i.as_str(), i.radix())
                    .map_err(|_| self.err("integer out of range"))?;
                if n.unsigned_abs() > 1 << 53 {
                    return Err(self.err("integer too large to be exact as a number"));
                }
                n as f64
            }
            _ => return Err(self.wrong("a number")),
        };
        if !v.is_finite() {
            return Err(self.err(format!("{v} is not a finite number")));
        }
        Ok(v)
    }

    /// A probability or rate in [0, 1].
    fn rate(&self) -> Res<f64> {
        let v = self.number()?;
        if !(0.0..=1.0).contains(&v) {
            return Err(self.err(format!("{v} is out of range: expected a number in [0, 1]")));
        }
        Ok(v)
    }

    fn duration(&self) -> Res<Duration> {
        let s = self
            .str()
            .map_err(|_| self.wrong("a duration string such as \"45s\" or \"1d12h\""))?;
        Duration::parse(s).map_err(|e| self.err(e.to_string()))
    }

    fn positive_duration(&self) -> Res<Duration> {
        let d = self.duration()?;
        if d.is_zero() {
            return Err(self.err("must be longer than 0s"));
        }
        Ok(d)
    }

    /// A non-negative amount of money, exact to the cent.
    fn money(&self) -> Res<Money> {
        let v = self.number()?;
        let m = Money::from_config_f64(v).map_err(|e| self.err(e.to_string()))?;
        if m < Money::ZERO {
            return Err(self.err(format!("{m} is negative")));
        }
        Ok(m)
    }

    fn table(&self, allowed: &[&str]) -> Res<Table<'a, 'i, 's>> {
        match self.v.get_ref() {
            DeValue::Table(map) => {
                Table::new(self.doc, self.path.to_owned(), self.v.span(), map, allowed)
            }
            _ => Err(self.wrong("a table")),
        }
    }

    /// An array, with its elements' key paths (`path[i]`); at most `len_max` elements.
    fn array(&self, len_max: usize, what: &str) -> Res<Vec<(String, &'a Val<'i>)>> {
        let DeValue::Array(items) = self.v.get_ref() else {
            return Err(self.wrong("an array"));
        };
        if items.len() > len_max {
            let extra = &items[len_max];
            return Err(self.doc.err(
                extra.span(),
                format!("{}[{len_max}]", self.path),
                format!("more than {len_max} {what}"),
            ));
        }
        Ok(items
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("{}[{i}]", self.path), v))
            .collect())
    }
}

pub(super) fn describe(v: &DeValue<'_>) -> String {
    match v {
        DeValue::String(s) if s.chars().count() <= 40 => format!("string {s:?}"),
        DeValue::Integer(i) => format!("integer {i}"),
        DeValue::Float(f) => format!("float {f}"),
        DeValue::Boolean(b) => format!("boolean {b}"),
        other => other.type_str().to_owned(),
    }
}

impl<'a, 'i, 's> Table<'a, 'i, 's> {
    pub(super) fn new(
        doc: &'a Doc<'s>,
        path: String,
        span: Range<usize>,
        map: &'a DeTable<'i>,
        allowed: &[&str],
    ) -> Res<Self> {
        let mut keys: Vec<_> = map.iter().map(|(k, _)| k).collect();
        keys.sort_by_key(|k| k.span().start);
        if let Some(k) = keys
            .into_iter()
            .find(|k| !allowed.contains(&k.get_ref().as_ref()))
        {
            let name: &str = k.get_ref();
            let mut hint = String::new();
            if let Some(s) = suggest(name, allowed) {
                hint = format!(" (did you mean `{s}`?)");
            }
            if !allowed.is_empty() {
                hint.push_str(&format!("; expected one of: {}", one_of(allowed)));
            }
            return Err(doc.err(k.span(), join(&path, name), format!("unknown key{hint}")));
        }
        let paths = map
            .iter()
            .map(|(k, _)| (k.get_ref().as_ref(), join(&path, k.get_ref())))
            .collect();
        Ok(Table {
            doc,
            path,
            span,
            map,
            paths,
        })
    }

    fn path_of(&self, key: &str) -> &str {
        self.paths
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, p)| p.as_str())
            .unwrap_or("")
    }

    fn get(&self, key: &str) -> Option<Field<'_, 'i, 's>> {
        self.map.get(key).map(|v| Field {
            doc: self.doc,
            path: self.path_of(key),
            v,
        })
    }

    fn req(&self, key: &str) -> Res<Field<'_, 'i, 's>> {
        self.get(key).ok_or_else(|| {
            self.doc.err(
                self.span.clone(),
                join(&self.path, key),
                "missing required key",
            )
        })
    }

    /// Ordered (key span start) entries, for tables whose keys are data (`[systems]`, `min`).
    fn entries(&self) -> Vec<(&str, Field<'_, 'i, 's>)> {
        let mut e: Vec<_> = self.map.iter().collect();
        e.sort_by_key(|(k, _)| k.span().start);
        e.into_iter()
            .map(|(k, v)| {
                let k: &str = k.get_ref();
                (
                    k,
                    Field {
                        doc: self.doc,
                        path: self.path_of(k),
                        v,
                    },
                )
            })
            .collect()
    }
}

const TOP_KEYS: [&str; 9] = [
    "scenario",
    "systems",
    "network",
    "service",
    "plant",
    "drift",
    "fault",
    "masterdata",
    "expect",
];
const SCENARIO_KEYS: [&str; 5] = ["name", "description", "seed", "duration", "drain"];
const SYSTEM_KEYS: [&str; 4] = ["erp", "qms", "cmms", "mes"];
const PLANT_KEYS: [&str; 9] = [
    "id",
    "lines",
    "stations_per_line",
    "cycle_time",
    "inspection",
    "machines",
    "orders",
    "maintenance",
    "wan",
];
const NETWORK_KEYS: [&str; 2] = ["lan", "wan"];
const DIST_KEYS: [&str; 2] = ["median", "p99"];
const SERVICE_ENTRY_KEYS: [&str; 3] = ["median", "p99", "concurrency"];
const DRIFT_KEYS: [&str; 3] = ["station", "at", "defect_rate"];
const MASTERDATA_KEYS: [&str; 3] = ["at", "kind", "count"];
const EXPECT_KEYS: [&str; 4] = ["invariants", "slo", "min", "latency_min"];
const SLO_KEYS: [&str; 3] = ["critical_p99", "transactional_p99", "bulk_p99"];

pub(super) fn parse_scenario(doc: &Doc<'_>, root: &Val<'_>) -> Res<Scenario> {
    let root = Field {
        doc,
        path: "",
        v: root,
    }
    .table(&TOP_KEYS)?;

    let head = root.req("scenario")?.table(&SCENARIO_KEYS)?;
    let name_field = head.req("name")?;
    let name = name_field.str()?;
    check_name(name).map_err(|m| name_field.err(m))?;
    let description = match head.get("description") {
        Some(f) => {
            let d = f.str()?;
            if d.len() > DESCRIPTION_LEN_MAX {
                return Err(f.err(format!("longer than {DESCRIPTION_LEN_MAX} bytes")));
            }
            d.to_owned()
        }
        None => String::new(),
    };
    let seed = head
        .get("seed")
        .map(|f| f.int(0, SEED_MAX))
        .transpose()?
        .unwrap_or(0);
    let duration_field = head.req("duration")?;
    let duration = duration_field.positive_duration()?;
    if duration > DURATION_MAX {
        return Err(duration_field.err(format!("longer than the maximum {DURATION_MAX}")));
    }
    let drain = match head.get("drain") {
        Some(f) => {
            // A zero drain leaves no time for retries to converge: every run with a call in
            // flight at the end would fail `no-lost-events`.
            let d = f.positive_duration()?;
            if d > DRAIN_MAX {
                return Err(f.err(format!("longer than the maximum {DRAIN_MAX}")));
            }
            d
        }
        None => Duration::from_hours(24),
    };
    let run = Run { duration };

    let mut systems = Systems::default();
    if let Some(f) = root.get("systems") {
        let t = f.table(&SYSTEM_KEYS)?;
        for (key, f) in t.entries() {
            let system = System::parse(key).expect("keys were checked");
            let s = f.str()?;
            *systems.get_mut(system) = Personality::parse(s).ok_or_else(|| {
                f.err(format!(
                    "unknown personality {s:?}; expected one of: modern, legacy, saas"
                ))
            })?;
        }
    }

    let mut network = Network::default();
    if let Some(f) = root.get("network") {
        let t = f.table(&NETWORK_KEYS)?;
        if let Some(f) = t.get("lan") {
            network.lan = parse_dist(&f)?;
        }
        if let Some(f) = t.get("wan") {
            network.wan = parse_dist(&f)?;
        }
    }

    let mut service = [Service::default(); 4];
    if let Some(f) = root.get("service") {
        let t = f.table(&SYSTEM_KEYS)?;
        for (key, f) in t.entries() {
            let system = System::parse(key).expect("keys were checked");
            service[system.index()] = parse_service(&f)?;
        }
    }

    let mut plants: Vec<PlantSpec> = Vec::new();
    if let Some(f) = root.get("plant") {
        for (path, v) in array_of_tables(&f, PLANTS_MAX, "plants")? {
            let (plant, id_span) = parse_plant(doc, &path, v)?;
            if let Some(first) = plants.iter().position(|q| q.id == plant.id) {
                let message = format!(
                    "duplicate plant id {:?} (also plant[{first}])",
                    plant.id.as_str()
                );
                return Err(doc.err(id_span, join(&path, "id"), message));
            }
            plants.push(plant);
        }
    }
    if plants.is_empty() {
        return Err(doc.err(0..0, "plant", "a scenario needs at least one [[plant]]"));
    }
    let scenario_plants = Plants(&plants);

    let drifts = match root.get("drift") {
        Some(f) => array_of_tables(&f, DRIFTS_MAX, "drifts")?
            .iter()
            .map(|(path, v)| parse_drift(doc, path, v, &run, &scenario_plants))
            .collect::<Res<Vec<_>>>()?,
        None => Vec::new(),
    };

    let faults = match root.get("fault") {
        Some(f) => array_of_tables(&f, FAULTS_MAX, "faults")?
            .iter()
            .map(|(path, v)| parse_fault(doc, path, v, &run, &scenario_plants))
            .collect::<Res<Vec<_>>>()?,
        None => Vec::new(),
    };

    let masterdata = match root.get("masterdata") {
        Some(f) => array_of_tables(&f, MASTERDATA_MAX, "master-data releases")?
            .iter()
            .map(|(path, v)| parse_masterdata(doc, path, v, &run))
            .collect::<Res<Vec<_>>>()?,
        None => Vec::new(),
    };

    let expect = match root.get("expect") {
        Some(f) => parse_expect(&f)?,
        None => Expect::default(),
    };

    Ok(Scenario {
        name: name.to_owned(),
        description,
        seed,
        duration,
        drain,
        systems,
        network,
        service,
        plants,
        drifts,
        faults,
        masterdata,
        expect,
    })
}

pub(super) fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > NAME_LEN_MAX {
        return Err(format!("longer than {NAME_LEN_MAX} bytes"));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err("must start with a letter or a digit".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "character {c:?} not allowed: use letters, digits, '-', '_' and '.'"
        ));
    }
    Ok(())
}

/// The run's time frame, for checking windows.
pub(super) struct Run {
    duration: Duration,
}

impl Run {
    /// `at` as an instant strictly before the end of `duration`.
    fn start(&self, f: &Field<'_, '_, '_>) -> Res<Instant> {
        let d = f.duration()?;
        if d >= self.duration {
            return Err(f.err(format!(
                "{d} is not before the scenario duration {}",
                self.duration
            )));
        }
        Ok(Instant::ZERO + d)
    }

    /// Checks that `start + length` stays within `duration`; the error points at `f` (the length).
    fn fits(&self, start: Instant, length: Duration, f: &Field<'_, '_, '_>) -> Res<()> {
        let end = start + length;
        if end > Instant::ZERO + self.duration {
            return Err(f.err(format!(
                "window {} + {length} ends after the scenario duration {}",
                at_text(start),
                self.duration
            )));
        }
        Ok(())
    }
}

/// The scenario's plants, for cross-references.
pub(super) struct Plants<'p>(&'p [PlantSpec]);

impl Plants<'_> {
    fn resolve(&self, f: &Field<'_, '_, '_>) -> Res<PlantId> {
        let id = f.str()?;
        match self.0.iter().find(|p| p.id.as_str() == id) {
            Some(p) => Ok(p.id.clone()),
            None => {
                let ids: Vec<&str> = self.0.iter().map(|p| p.id.as_str()).collect();
                Err(f.err(format!(
                    "unknown plant {id:?}; the scenario's plants are: {}",
                    one_of(&ids)
                )))
            }
        }
    }
}

pub(super) fn array_of_tables<'a, 'i, 's>(
    f: &Field<'a, 'i, 's>,
    len_max: usize,
    what: &str,
) -> Res<Vec<(String, &'a Val<'i>)>> {
    if !matches!(f.v.get_ref(), DeValue::Array(_)) {
        return Err(f.wrong(&format!("an array of tables ([[{}]])", f.path)));
    }
    f.array(len_max, what)
}

/// A latency bound: a positive duration of at most [`LATENCY_MAX`].
fn latency(f: &Field<'_, '_, '_>) -> Res<Duration> {
    let d = f.positive_duration()?;
    if d > LATENCY_MAX {
        return Err(f.err(format!("longer than the maximum {LATENCY_MAX}")));
    }
    Ok(d)
}

/// `{ median, p99 }` from the table `t` (both required); p99 at least the median.
fn dist_of(t: &Table<'_, '_, '_>) -> Res<LatencyDist> {
    let median = latency(&t.req("median")?)?;
    let p99_field = t.req("p99")?;
    let p99 = latency(&p99_field)?;
    if p99 < median {
        return Err(p99_field.err(format!(
            "p99 {p99} is below the median {median}: a p99 is at least the median"
        )));
    }
    Ok(LatencyDist::new(median, p99))
}

/// A latency distribution `{ median, p99 }`.
pub(super) fn parse_dist(f: &Field<'_, '_, '_>) -> Res<LatencyDist> {
    dist_of(&f.table(&DIST_KEYS)?)
}

/// One system's `{ median, p99, concurrency }`: `median` and `p99` together or neither.
pub(super) fn parse_service(f: &Field<'_, '_, '_>) -> Res<Service> {
    let t = f.table(&SERVICE_ENTRY_KEYS)?;
    let mut service = Service::default();
    match (t.get("median"), t.get("p99")) {
        (None, None) => {}
        (Some(_), Some(_)) => service.time = dist_of(&t)?,
        (Some(g), None) | (None, Some(g)) => {
            return Err(g.err("give the service time's median and p99 together"));
        }
    }
    if let Some(f) = t.get("concurrency") {
        service.concurrency = f.u32(1, CONCURRENCY_MAX)?;
    }
    Ok(service)
}

/// A plant and the span of its `id` value (for the duplicate check).
pub(super) fn parse_plant(
    doc: &Doc<'_>,
    path: &str,
    v: &Val<'_>,
) -> Res<(PlantSpec, Range<usize>)> {
    let t = Field { doc, path, v }.table(&PLANT_KEYS)?;
    let id_field = t.req("id")?;
    let id = PlantId::new(id_field.str()?).map_err(|e| id_field.err(e.reason))?;
    let lines = t.req("lines")?.u32(1, LINES_MAX)?;
    let stations_per_line = t.req("stations_per_line")?.u32(1, STATIONS_PER_LINE_MAX)?;
    // The longest derived station id must be a valid id too.
    derive_station_id(&id, lines, stations_per_line).map_err(|reason| {
        id_field.err(format!("derived station ids such as \"{id}-L{lines}-S{stations_per_line}\" are invalid: {reason} (ids are at most {ID_LEN_MAX} bytes)"))
    })?;
    let cycle_time = t.req("cycle_time")?.positive_duration()?;

    let mut inspection = Inspection::default();
    if let Some(f) = t.get("inspection") {
        let it = f.table(&["sample_rate", "defect_rate"])?;
        if let Some(f) = it.get("sample_rate") {
            inspection.sample_rate = f.rate()?;
        }
        if let Some(f) = it.get("defect_rate") {
            inspection.defect_rate = f.rate()?;
        }
    }

    let machines = match t.get("machines") {
        Some(f) => {
            let mt = f.table(&["mtbf", "mttr"])?;
            Some(Machines {
                mtbf: mt.req("mtbf")?.positive_duration()?,
                mttr: mt.req("mttr")?.duration()?,
            })
        }
        None => None,
    };

    let mut orders = Orders::default();
    if let Some(f) = t.get("orders") {
        let ot = f.table(&["size", "material"])?;
        if let Some(f) = ot.get("size") {
            orders.size = f.u32(1, ORDER_SIZE_MAX)?;
        }
        if let Some(f) = ot.get("material") {
            orders.material = MaterialId::new(f.str()?).map_err(|e| f.err(e.reason))?;
        }
    }

    let mut maintenance = Maintenance::default();
    if let Some(f) = t.get("maintenance") {
        let mt = f.table(&["labor_rate", "parts"])?;
        if let Some(f) = mt.get("labor_rate") {
            maintenance.labor_rate = f.money()?;
        }
        if let Some(f) = mt.get("parts") {
            for (ppath, pv) in f.array(PARTS_MAX, "parts")? {
                let pt = Field {
                    doc,
                    path: &ppath,
                    v: pv,
                }
                .table(&["part", "unit_cost"])?;
                let part_field = pt.req("part")?;
                let part = PartId::new(part_field.str()?).map_err(|e| part_field.err(e.reason))?;
                if maintenance.parts.iter().any(|p| p.part == part) {
                    return Err(part_field.err(format!("duplicate part {:?}", part.as_str())));
                }
                let unit_cost = pt.req("unit_cost")?.money()?;
                maintenance.parts.push(PartCost { part, unit_cost });
            }
        }
    }

    let wan = t.get("wan").map(|f| parse_dist(&f)).transpose()?;

    let plant = PlantSpec {
        id,
        lines,
        stations_per_line,
        cycle_time,
        inspection,
        machines,
        orders,
        maintenance,
        wan,
    };
    Ok((plant, id_field.v.span()))
}

pub(super) fn parse_drift(
    doc: &Doc<'_>,
    path: &str,
    v: &Val<'_>,
    run: &Run,
    plants: &Plants<'_>,
) -> Res<Drift> {
    let t = Field { doc, path, v }.table(&DRIFT_KEYS)?;
    let sf = t.req("station")?;
    let s = sf.str()?;
    if !plants.0.iter().any(|p| p.has_station(s)) {
        let examples: Vec<String> = plants
            .0
            .iter()
            .map(|p| {
                format!(
                    "{}-L1-S1 … {}",
                    p.id,
                    p.station_id(p.lines, p.stations_per_line)
                )
            })
            .collect();
        return Err(sf.err(format!(
            "unknown station {s:?}; the scenario's stations are {}",
            examples.join(", ")
        )));
    }
    let station = StationId::new(s).map_err(|e| sf.err(e.reason))?;
    let at = match t.get("at") {
        Some(f) => run.start(&f)?,
        None => Instant::ZERO,
    };
    let defect_rate = t.req("defect_rate")?.rate()?;
    Ok(Drift {
        station,
        at,
        defect_rate,
    })
}

pub(super) fn parse_system(f: &Field<'_, '_, '_>) -> Res<System> {
    let s = f.str()?;
    System::parse(s).ok_or_else(|| {
        f.err(format!(
            "unknown system {s:?}; expected one of: erp, qms, cmms, mes"
        ))
    })
}

pub(super) fn parse_fault(
    doc: &Doc<'_>,
    path: &str,
    v: &Val<'_>,
    run: &Run,
    plants: &Plants<'_>,
) -> Res<Fault> {
    let any = Field { doc, path, v };
    // Read `kind` first: it decides which keys are allowed.
    let DeValue::Table(map) = v.get_ref() else {
        return Err(any.wrong("a table"));
    };
    let kind_path = join(path, "kind");
    let kind_field = match map.get("kind") {
        Some(kv) => Field {
            doc,
            path: &kind_path,
            v: kv,
        },
        None => {
            return Err(doc.err(
                v.span(),
                kind_path,
                format!(
                    "missing required key; expected one of: {}",
                    one_of(&FAULT_KINDS)
                ),
            ));
        }
    };
    let kind = kind_field.str()?;
    let allowed: &[&str] = match kind {
        "wan-outage" => &["kind", "plant", "at", "for"],
        "endpoint-errors" => &["kind", "system", "at", "for", "rate"],
        "endpoint-outage" => &["kind", "system", "at", "for"],
        "endpoint-throttle" => &["kind", "system", "at", "for", "limit_per_s"],
        "endpoint-latency" => &["kind", "system", "at", "for", "latency"],
        "duplicate-delivery" => &["kind", "system", "at", "for", "probability"],
        "reorder" => &["kind", "system", "at", "for", "window"],
        "core-crash" => &["kind", "at", "downtime"],
        "alarm-storm" => &["kind", "plant", "at", "events", "over"],
        _ => {
            let hint = match suggest(kind, &FAULT_KINDS) {
                Some(s) => format!("did you mean {s:?}?"),
                None => format!("expected one of: {}", one_of(&FAULT_KINDS)),
            };
            return Err(kind_field.err(format!("unknown fault kind {kind:?}; {hint}")));
        }
    };
    let t = any.table(allowed)?;
    let window = || -> Res<Window> {
        let start = match t.get("at") {
            Some(f) => run.start(&f)?,
            None => Instant::ZERO,
        };
        match t.get("for") {
            Some(f) => {
                let length = f.positive_duration()?;
                run.fits(start, length, &f)?;
                Ok(Window { start, length })
            }
            None => Ok(Window {
                start,
                length: (Instant::ZERO + run.duration) - start,
            }),
        }
    };
    let system = || parse_system(&t.req("system")?);
    Ok(match kind {
        "wan-outage" => Fault::WanOutage {
            plant: plants.resolve(&t.req("plant")?)?,
            active: window()?,
        },
        "endpoint-errors" => Fault::EndpointErrors {
            system: system()?,
            active: window()?,
            rate: t.req("rate")?.rate()?,
        },
        "endpoint-outage" => Fault::EndpointOutage {
            system: system()?,
            active: window()?,
        },
        "endpoint-throttle" => Fault::EndpointThrottle {
            system: system()?,
            active: window()?,
            limit_per_s: t.req("limit_per_s")?.u32(1, THROTTLE_LIMIT_PER_S_MAX)?,
        },
        "endpoint-latency" => Fault::EndpointLatency {
            system: system()?,
            active: window()?,
            latency: t.req("latency")?.positive_duration()?,
        },
        "duplicate-delivery" => Fault::DuplicateDelivery {
            system: system()?,
            active: window()?,
            probability: t.req("probability")?.rate()?,
        },
        "reorder" => Fault::Reorder {
            system: system()?,
            active: window()?,
            window: t.req("window")?.positive_duration()?,
        },
        "core-crash" => {
            let at = run.start(&t.req("at")?)?;
            let df = t.req("downtime")?;
            let downtime = df.positive_duration()?;
            run.fits(at, downtime, &df)?;
            Fault::CoreCrash { at, downtime }
        }
        "alarm-storm" => {
            let plant = plants.resolve(&t.req("plant")?)?;
            let at = run.start(&t.req("at")?)?;
            let events = t.req("events")?.u32(1, ALARM_STORM_EVENTS_MAX)?;
            let of = t.req("over")?;
            let over = of.duration()?;
            run.fits(at, over, &of)?;
            Fault::AlarmStorm {
                plant,
                at,
                events,
                over,
            }
        }
        _ => unreachable!("kinds were matched above"),
    })
}

pub(super) fn parse_masterdata(
    doc: &Doc<'_>,
    path: &str,
    v: &Val<'_>,
    run: &Run,
) -> Res<MasterData> {
    let t = Field { doc, path, v }.table(&MASTERDATA_KEYS)?;
    let at = run.start(&t.req("at")?)?;
    let kf = t.req("kind")?;
    let k = kf.str()?;
    let kind = MasterDataKind::parse(k).ok_or_else(|| {
        kf.err(format!(
            "unknown master-data kind {k:?}; expected one of: material, asset, inspection-spec"
        ))
    })?;
    let count = t.req("count")?.u32(1, MASTERDATA_COUNT_MAX)?;
    Ok(MasterData { at, kind, count })
}

pub(super) fn parse_expect(f: &Field<'_, '_, '_>) -> Res<Expect> {
    let t = f.table(&EXPECT_KEYS)?;
    let mut expect = Expect::default();
    if let Some(f) = t.get("invariants") {
        let items = f.array(InvariantId::ALL.len() + 1, "invariants")?;
        let mut ids = Vec::new();
        let mut all = false;
        for (path, v) in &items {
            let item = Field {
                doc: f.doc,
                path,
                v,
            };
            let s = item.str()?;
            if s == "all" {
                if items.len() > 1 {
                    return Err(item.err("\"all\" must stand alone"));
                }
                all = true;
                continue;
            }
            let id = InvariantId::parse(s).ok_or_else(|| {
                let names: Vec<&str> = InvariantId::ALL.iter().map(|i| i.as_str()).collect();
                item.err(format!(
                    "unknown invariant {s:?}; expected \"all\" or one of: {}",
                    one_of(&names)
                ))
            })?;
            if ids.contains(&id) {
                return Err(item.err(format!("duplicate invariant {s:?}")));
            }
            ids.push(id);
        }
        expect.invariants = if all {
            Invariants::All
        } else {
            Invariants::Only(ids)
        };
    }
    if let Some(f) = t.get("latency_min") {
        let st = f.table(&SLO_KEYS)?;
        let get = |k: &str| st.get(k).map(|f| f.positive_duration()).transpose();
        expect.latency_min = Slo {
            critical_p99: get("critical_p99")?,
            transactional_p99: get("transactional_p99")?,
            bulk_p99: get("bulk_p99")?,
        };
    }
    if let Some(f) = t.get("slo") {
        let st = f.table(&SLO_KEYS)?;
        let get = |k: &str| st.get(k).map(|f| f.positive_duration()).transpose();
        expect.slo = Slo {
            critical_p99: get("critical_p99")?,
            transactional_p99: get("transactional_p99")?,
            bulk_p99: get("bulk_p99")?,
        };
        // An objective that no invariant judges would be ignored without a word.
        if expect.slo != Slo::default() && !expect.invariants.includes(InvariantId::Slo) {
            return Err(f.err(
                "latency objectives given, but \"slo\" is not among expect.invariants; add it there or remove this table",
            ));
        }
    }
    if let Some(f) = t.get("min") {
        let names: Vec<&str> = Count::ALL.iter().map(|c| c.as_str()).collect();
        let mt = f.table(&names)?;
        for (key, f) in mt.entries() {
            let count = Count::parse(key).expect("keys were checked");
            expect.min.insert(count, f.int(0, MIN_COUNT_MAX)?);
        }
    }
    Ok(expect)
}

/// The 1-based line of `scenario.name` in a scenario file's text, for errors found across files
/// (two files of one suite with one name); `None` if the text does not parse or has no name.
pub fn name_line(text: &str) -> Option<u32> {
    let root = DeTable::parse(text).ok()?;
    let DeValue::Table(head) = root.get_ref().get("scenario")?.get_ref() else {
        return None;
    };
    let name = head.get("name")?;
    Some(Doc::new("", text).line(name.span().start))
}
