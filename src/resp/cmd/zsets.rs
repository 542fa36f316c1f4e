//! Sorted-set commands. Membership is add-wins; each member's score is a
//! counter that ZADD resets and ZINCRBY adds to (see `core::crdt::ZSet`),
//! so concurrent ZINCRBYs through different nodes sum and concurrent ZADDs
//! of one member agree on one winner.

use super::typed::{self, pick, scan_page, zset};
use super::{CmdResult, is, parse_f64, parse_i64, syntax_error};
use crate::core::crdt::{TypeKind, TypedValue, ZSet};
use crate::kv::Kv;
use crate::resp::reply::Reply;
use bytes::Bytes;
use std::collections::BTreeMap;

/// Runs a sorted-set command.
pub async fn run<K: Kv>(kv: &K, name: &str, args: &[Bytes]) -> CmdResult {
    let key = args[1].clone();
    match name {
        "zadd" => zadd(kv, key, &args[2..]).await,
        "zincrby" => {
            let by = parse_f64(&args[2])?;
            let member = args[3].clone();
            let score = typed::update(kv, key, TypeKind::ZSet, move |v| {
                let z = zset(v)?;
                let next = z.score(&member).unwrap_or(0.0) + by;
                if next.is_nan() {
                    return Err(Reply::err("resulting score is not a number (NaN)"));
                }
                Ok((true, z.incr(member, by)))
            })
            .await?;
            Ok(Reply::Double(score))
        }
        "zrem" => {
            let members = args[2..].to_vec();
            let n = typed::update(kv, key, TypeKind::ZSet, move |v| {
                let z = zset(v)?;
                let n = members.iter().filter(|m| z.remove(m)).count() as i64;
                Ok((n > 0, n))
            })
            .await?;
            Ok(Reply::Int(n))
        }
        "zpopmin" | "zpopmax" => {
            let count = match args.get(2) {
                None => None,
                Some(c) => Some(
                    parse_i64(c)
                        .ok()
                        .and_then(|n| usize::try_from(n).ok())
                        .ok_or_else(|| Reply::err("value is out of range, must be positive"))?,
                ),
            };
            if args.len() > 3 {
                return Err(syntax_error());
            }
            let max = name == "zpopmax";
            let popped = typed::update(kv, key, TypeKind::ZSet, move |v| {
                let z = zset(v)?;
                let mut all = z.sorted();
                if max {
                    all.reverse();
                }
                all.truncate(count.unwrap_or(1));
                for (_, m) in &all {
                    z.remove(m);
                }
                Ok((!all.is_empty(), all))
            })
            .await?;
            Ok(match count {
                None => Reply::Array(
                    popped
                        .into_iter()
                        .flat_map(|(s, m)| [Reply::Bulk(m), Reply::Double(s)])
                        .collect(),
                ),
                Some(_) => pairs(popped),
            })
        }
        "zremrangebyscore" | "zremrangebyrank" | "zremrangebylex" => {
            let how = match name {
                "zremrangebyscore" => By::Score,
                "zremrangebyrank" => By::Rank,
                _ => By::Lex,
            };
            let range = Range::parse(how, &args[2], &args[3], false)?;
            let n = typed::update(kv, key, TypeKind::ZSet, move |v| {
                let z = zset(v)?;
                let chosen = range.select(&z.sorted(), None);
                for (_, m) in &chosen {
                    z.remove(m);
                }
                Ok((!chosen.is_empty(), chosen.len() as i64))
            })
            .await?;
            Ok(Reply::Int(n))
        }
        "zrangestore" => {
            let src = args[2].clone();
            let q = RangeQuery::parse(&args[3..], true)?;
            let z = read(kv, src).await?;
            let chosen = q.run(&z);
            let n = chosen.len() as i64;
            typed::replace(kv, key, TypeKind::ZSet, move |v| {
                let z = zset(v)?;
                for (s, m) in chosen {
                    z.set(m, s);
                }
                Ok(())
            })
            .await?;
            Ok(Reply::Int(n))
        }
        "zunionstore" | "zinterstore" | "zdiffstore" => {
            let op = &name[..name.len() - 5];
            let (result, _) = combine(kv, op, &args[2..], false).await?;
            let n = result.len() as i64;
            typed::replace(kv, key, TypeKind::ZSet, move |v| {
                let z = zset(v)?;
                for (m, s) in result {
                    z.set(m, s);
                }
                Ok(())
            })
            .await?;
            Ok(Reply::Int(n))
        }
        "zunion" | "zinter" | "zdiff" => {
            let (result, with_scores) = combine(kv, name, &args[1..], true).await?;
            let mut sorted: Vec<(f64, Bytes)> = result.into_iter().map(|(m, s)| (s, m)).collect();
            sorted.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
            Ok(members_reply(sorted, with_scores))
        }
        _ => read_only(kv, name, key, args).await,
    }
}

async fn read<K: Kv>(kv: &K, key: Bytes) -> Result<ZSet, Reply> {
    Ok(match typed::read(kv, key, TypeKind::ZSet).await? {
        Some(TypedValue::ZSet(z)) => z,
        _ => ZSet::new(),
    })
}

fn pairs(items: Vec<(f64, Bytes)>) -> Reply {
    Reply::Pairs(
        items
            .into_iter()
            .map(|(s, m)| (Reply::Bulk(m), Reply::Double(s)))
            .collect(),
    )
}

fn members_reply(items: Vec<(f64, Bytes)>, with_scores: bool) -> Reply {
    if with_scores {
        pairs(items)
    } else {
        Reply::Array(items.into_iter().map(|(_, m)| Reply::Bulk(m)).collect())
    }
}

async fn zadd<K: Kv>(kv: &K, key: Bytes, args: &[Bytes]) -> CmdResult {
    let (mut nx, mut xx, mut gt, mut lt, mut ch, mut incr) =
        (false, false, false, false, false, false);
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if is(a, "NX") {
            nx = true;
        } else if is(a, "XX") {
            xx = true;
        } else if is(a, "GT") {
            gt = true;
        } else if is(a, "LT") {
            lt = true;
        } else if is(a, "CH") {
            ch = true;
        } else if is(a, "INCR") {
            incr = true;
        } else {
            break;
        }
        i += 1;
    }
    let rest = &args[i..];
    if rest.is_empty() || !rest.len().is_multiple_of(2) {
        return Err(syntax_error());
    }
    if nx && xx {
        return Err(Reply::err(
            "XX and NX options at the same time are not compatible",
        ));
    }
    if (nx && (gt || lt)) || (gt && lt) {
        return Err(Reply::err(
            "GT, LT, and/or NX options at the same time are not compatible",
        ));
    }
    if incr && rest.len() > 2 {
        return Err(Reply::err(
            "INCR option supports a single increment-element pair",
        ));
    }
    let mut items = Vec::with_capacity(rest.len() / 2);
    for pair in rest.chunks_exact(2) {
        items.push((parse_f64(&pair[0])?, pair[1].clone()));
    }
    let outcome = typed::update(kv, key, TypeKind::ZSet, move |v| {
        let z = zset(v)?;
        let mut changed = 0i64;
        let mut added = 0i64;
        let mut incr_result = None;
        for (score, member) in items {
            let current = z.score(&member);
            if (nx && current.is_some()) || (xx && current.is_none()) {
                continue;
            }
            let next = match (incr, current) {
                (true, Some(c)) => c + score,
                _ => score,
            };
            if next.is_nan() {
                return Err(Reply::err("resulting score is not a number (NaN)"));
            }
            if let Some(c) = current
                && ((gt && next <= c) || (lt && next >= c))
            {
                continue;
            }
            if current == Some(next) {
                incr_result = Some(next);
                continue;
            }
            if incr && current.is_some() {
                z.incr(member, score);
            } else {
                z.set(member, next);
            }
            incr_result = Some(next);
            changed += 1;
            added += current.is_none() as i64;
        }
        let reply = if incr {
            incr_result.map_or(Reply::Null, Reply::Double)
        } else {
            Reply::Int(if ch { changed } else { added })
        };
        Ok((changed > 0, reply))
    })
    .await?;
    Ok(outcome)
}

/// How a range is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum By {
    Rank,
    Score,
    Lex,
}

/// One end of a score or lex range.
#[derive(Clone, Debug)]
enum Bound<T> {
    Unbounded,
    Inclusive(T),
    Exclusive(T),
}

/// A parsed range over the sorted members.
#[derive(Clone, Debug)]
enum Range {
    Rank(i64, i64),
    Score(Bound<f64>, Bound<f64>),
    Lex(Bound<Bytes>, Bound<Bytes>),
}

fn score_bound(arg: &[u8], low: bool) -> Result<Bound<f64>, Reply> {
    let bad = || Reply::err("min or max is not a float");
    let (exclusive, text) = match arg.strip_prefix(b"(") {
        Some(rest) => (true, rest),
        None => (false, arg),
    };
    let v = parse_f64(text).map_err(|_| bad())?;
    if v.is_infinite() && ((v < 0.0 && low) || (v > 0.0 && !low)) && !exclusive {
        return Ok(Bound::Unbounded);
    }
    Ok(if exclusive {
        Bound::Exclusive(v)
    } else {
        Bound::Inclusive(v)
    })
}

fn lex_bound(arg: &Bytes) -> Result<Bound<Bytes>, Reply> {
    let bad = || Reply::err("min or max not valid string range item");
    match arg.first() {
        Some(b'-' | b'+') if arg.len() == 1 => Ok(Bound::Unbounded),
        Some(b'[') => Ok(Bound::Inclusive(arg.slice(1..))),
        Some(b'(') => Ok(Bound::Exclusive(arg.slice(1..))),
        _ => Err(bad()),
    }
}

impl Range {
    /// `min`, `max` as the command gives them (swapped already for REV).
    fn parse(by: By, min: &Bytes, max: &Bytes, _rev: bool) -> Result<Range, Reply> {
        Ok(match by {
            By::Rank => Range::Rank(parse_i64(min)?, parse_i64(max)?),
            By::Score => Range::Score(score_bound(min, true)?, score_bound(max, false)?),
            By::Lex => {
                // "-" as a maximum or "+" as a minimum select nothing.
                let lo = match (min.as_ref(), lex_bound(min)?) {
                    (b"+", _) => {
                        return Ok(Range::Lex(
                            Bound::Exclusive(Bytes::new()),
                            Bound::Exclusive(Bytes::new()),
                        ));
                    }
                    (_, b) => b,
                };
                let hi = match (max.as_ref(), lex_bound(max)?) {
                    (b"-", _) => {
                        return Ok(Range::Lex(
                            Bound::Exclusive(Bytes::new()),
                            Bound::Exclusive(Bytes::new()),
                        ));
                    }
                    (_, b) => b,
                };
                Range::Lex(lo, hi)
            }
        })
    }

    fn contains_score(lo: &Bound<f64>, hi: &Bound<f64>, s: f64) -> bool {
        let above = match lo {
            Bound::Unbounded => true,
            Bound::Inclusive(v) => s >= *v,
            Bound::Exclusive(v) => s > *v,
        };
        let below = match hi {
            Bound::Unbounded => true,
            Bound::Inclusive(v) => s <= *v,
            Bound::Exclusive(v) => s < *v,
        };
        above && below
    }

    fn contains_lex(lo: &Bound<Bytes>, hi: &Bound<Bytes>, m: &Bytes) -> bool {
        let above = match lo {
            Bound::Unbounded => true,
            Bound::Inclusive(v) => m >= v,
            Bound::Exclusive(v) => m > v,
        };
        let below = match hi {
            Bound::Unbounded => true,
            Bound::Inclusive(v) => m <= v,
            Bound::Exclusive(v) => m < v,
        };
        above && below
    }

    /// The members in range, in `sorted`'s order; `limit` = (offset, count).
    fn select(&self, sorted: &[(f64, Bytes)], limit: Option<(i64, i64)>) -> Vec<(f64, Bytes)> {
        let chosen: Vec<(f64, Bytes)> = match self {
            Range::Rank(start, stop) => {
                let len = sorted.len() as i64;
                let start = if *start < 0 {
                    (len + start).max(0)
                } else {
                    *start
                };
                let stop = if *stop < 0 {
                    len + stop
                } else {
                    (*stop).min(len - 1)
                };
                if start > stop || start >= len {
                    return Vec::new();
                }
                sorted[start as usize..=stop as usize].to_vec()
            }
            Range::Score(lo, hi) => sorted
                .iter()
                .filter(|(s, _)| Range::contains_score(lo, hi, *s))
                .cloned()
                .collect(),
            Range::Lex(lo, hi) => sorted
                .iter()
                .filter(|(_, m)| Range::contains_lex(lo, hi, m))
                .cloned()
                .collect(),
        };
        match limit {
            None => chosen,
            Some((offset, count)) => {
                if offset < 0 {
                    return Vec::new();
                }
                let it = chosen.into_iter().skip(offset as usize);
                if count < 0 {
                    it.collect()
                } else {
                    it.take(count as usize).collect()
                }
            }
        }
    }
}

/// ZRANGE's arguments after the key: `start stop [BYSCORE|BYLEX] [REV]
/// [LIMIT offset count] [WITHSCORES]`.
struct RangeQuery {
    range: Range,
    rev: bool,
    limit: Option<(i64, i64)>,
    with_scores: bool,
}

impl RangeQuery {
    fn parse(args: &[Bytes], store: bool) -> Result<RangeQuery, Reply> {
        let (mut by, mut rev, mut limit, mut with_scores) = (By::Rank, false, None, false);
        let mut i = 2;
        while i < args.len() {
            let a = &args[i];
            if is(a, "BYSCORE") {
                by = By::Score;
            } else if is(a, "BYLEX") {
                by = By::Lex;
            } else if is(a, "REV") {
                rev = true;
            } else if is(a, "WITHSCORES") && !store {
                with_scores = true;
            } else if is(a, "LIMIT") && i + 2 < args.len() {
                limit = Some((parse_i64(&args[i + 1])?, parse_i64(&args[i + 2])?));
                i += 2;
            } else {
                return Err(syntax_error());
            }
            i += 1;
        }
        if limit.is_some() && by == By::Rank {
            return Err(Reply::err(
                "syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
            ));
        }
        if with_scores && by == By::Lex {
            return Err(Reply::err(
                "syntax error, WITHSCORES not supported in combination with BYLEX",
            ));
        }
        let (min, max) = if rev && by != By::Rank {
            (&args[1], &args[0])
        } else {
            (&args[0], &args[1])
        };
        Ok(RangeQuery {
            range: Range::parse(by, min, max, rev)?,
            rev,
            limit,
            with_scores,
        })
    }

    fn run(&self, z: &ZSet) -> Vec<(f64, Bytes)> {
        let mut sorted = z.sorted();
        if self.rev {
            sorted.reverse();
        }
        self.range.select(&sorted, self.limit)
    }
}

/// Maps a legacy range command onto ZRANGE's arguments.
fn legacy_range(name: &str, args: &[Bytes]) -> Result<Vec<Bytes>, Reply> {
    let mut out: Vec<Bytes> = vec![args[2].clone(), args[3].clone()];
    let (flag, rev): (Option<&str>, bool) = match name {
        "zrevrange" => (None, true),
        "zrangebyscore" => (Some("BYSCORE"), false),
        "zrevrangebyscore" => (Some("BYSCORE"), true),
        "zrangebylex" => (Some("BYLEX"), false),
        "zrevrangebylex" => (Some("BYLEX"), true),
        _ => (None, false),
    };
    if let Some(f) = flag {
        out.push(Bytes::from_static(f.as_bytes()));
    }
    if rev {
        out.push(Bytes::from_static(b"REV"));
    }
    let rest = &args[4..];
    let mut i = 0;
    while i < rest.len() {
        let a = &rest[i];
        if is(a, "WITHSCORES") && name != "zrangebylex" && name != "zrevrangebylex" {
            out.push(a.clone());
        } else if is(a, "LIMIT") && flag.is_some() && i + 2 < rest.len() {
            out.extend_from_slice(&rest[i..i + 3]);
            i += 2;
        } else {
            return Err(syntax_error());
        }
        i += 1;
    }
    Ok(out)
}

async fn read_only<K: Kv>(kv: &K, name: &str, key: Bytes, args: &[Bytes]) -> CmdResult {
    let z = read(kv, key).await?;
    Ok(match name {
        "zscore" => z.score(&args[2]).map_or(Reply::Null, Reply::Double),
        "zmscore" => Reply::Array(
            args[2..]
                .iter()
                .map(|m| z.score(m).map_or(Reply::Null, Reply::Double))
                .collect(),
        ),
        "zcard" => Reply::Int(z.len() as i64),
        "zcount" => {
            let range = Range::parse(By::Score, &args[2], &args[3], false)?;
            Reply::Int(range.select(&z.sorted(), None).len() as i64)
        }
        "zlexcount" => {
            let range = Range::parse(By::Lex, &args[2], &args[3], false)?;
            Reply::Int(range.select(&z.sorted(), None).len() as i64)
        }
        "zrange" => {
            let q = RangeQuery::parse(&args[2..], false)?;
            members_reply(q.run(&z), q.with_scores)
        }
        "zrevrange" | "zrangebyscore" | "zrevrangebyscore" | "zrangebylex" | "zrevrangebylex" => {
            let q = RangeQuery::parse(&legacy_range(name, args)?, false)?;
            members_reply(q.run(&z), q.with_scores)
        }
        "zrank" | "zrevrank" => {
            let with_score = match args.get(3) {
                None => false,
                Some(a) if is(a, "WITHSCORE") && args.len() == 4 => true,
                Some(_) => return Err(syntax_error()),
            };
            let mut sorted = z.sorted();
            if name == "zrevrank" {
                sorted.reverse();
            }
            match sorted.iter().position(|(_, m)| m == &args[2]) {
                None if with_score => Reply::NullArray,
                None => Reply::Null,
                Some(rank) if with_score => {
                    Reply::Array(vec![Reply::Int(rank as i64), Reply::Double(sorted[rank].0)])
                }
                Some(rank) => Reply::Int(rank as i64),
            }
        }
        "zrandmember" => {
            let sorted = z.sorted();
            match args.get(2) {
                None => Reply::bulk_or_null(pick(&sorted, 1).into_iter().next().map(|(_, m)| m)),
                Some(c) => {
                    let count = parse_i64(c)?;
                    let with_scores = match args.get(3) {
                        None => false,
                        Some(a) if is(a, "WITHSCORES") && args.len() == 4 => true,
                        Some(_) => return Err(syntax_error()),
                    };
                    let chosen: Vec<(f64, Bytes)> = if count >= 0 {
                        pick(&sorted, count as usize)
                    } else if sorted.is_empty() {
                        Vec::new()
                    } else {
                        (0..count.unsigned_abs())
                            .map(|_| sorted[rand::random_range(0..sorted.len())].clone())
                            .collect()
                    };
                    members_reply(chosen, with_scores)
                }
            }
        }
        "zscan" => {
            let sorted = z.sorted();
            let members: Vec<Bytes> = sorted.iter().map(|(_, m)| m.clone()).collect();
            let (cursor, page) = scan_page(&members, &args[2..])?;
            let mut out = Vec::with_capacity(page.len() * 2);
            for m in page {
                if let Some(s) = z.score(&m) {
                    out.push(Reply::Bulk(m));
                    out.push(Reply::Double(s));
                }
            }
            Reply::Array(vec![Reply::bulk(cursor.to_string()), Reply::Array(out)])
        }
        _ => return Err(Reply::err(format!("'{name}' is not a sorted-set command"))),
    })
}

/// ZUNION/ZINTER/ZDIFF(STORE) over `numkeys key... [WEIGHTS w...]
/// [AGGREGATE SUM|MIN|MAX] [WITHSCORES]`; sets count with score 1.
async fn combine<K: Kv>(
    kv: &K,
    op: &str,
    args: &[Bytes],
    allow_with_scores: bool,
) -> Result<(BTreeMap<Bytes, f64>, bool), Reply> {
    let numkeys = parse_i64(&args[0])?;
    let numkeys = usize::try_from(numkeys)
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| Reply::err(format!("at least 1 input key is needed for '{op}' command")))?;
    let keys = args.get(1..1 + numkeys).ok_or_else(syntax_error)?;
    let mut weights = vec![1.0; numkeys];
    let mut aggregate = "sum";
    let mut with_scores = false;
    let rest = &args[1 + numkeys..];
    let mut i = 0;
    while i < rest.len() {
        let a = &rest[i];
        if is(a, "WEIGHTS") && op != "zdiff" && i + numkeys < rest.len() {
            for (w, text) in weights.iter_mut().zip(&rest[i + 1..i + 1 + numkeys]) {
                *w = parse_f64(text).map_err(|_| Reply::err("weight value is not a float"))?;
            }
            i += numkeys;
        } else if is(a, "AGGREGATE") && op != "zdiff" && i + 1 < rest.len() {
            let which = &rest[i + 1];
            aggregate = if is(which, "SUM") {
                "sum"
            } else if is(which, "MIN") {
                "min"
            } else if is(which, "MAX") {
                "max"
            } else {
                return Err(syntax_error());
            };
            i += 1;
        } else if is(a, "WITHSCORES") && allow_with_scores {
            with_scores = true;
        } else {
            return Err(syntax_error());
        }
        i += 1;
    }
    let mut inputs = Vec::with_capacity(numkeys);
    for key in keys {
        let found = match super::strings::read(kv, key.clone()).await? {
            None => BTreeMap::new(),
            Some(v) => match v.typed {
                Some(TypedValue::ZSet(z)) => z.sorted().into_iter().map(|(s, m)| (m, s)).collect(),
                Some(TypedValue::Set(s)) => s.keys().map(|m| (m.clone(), 1.0)).collect(),
                _ => return Err(typed::wrong_type()),
            },
        };
        inputs.push(found);
    }
    let agg = |a: f64, b: f64| match aggregate {
        "min" => a.min(b),
        "max" => a.max(b),
        _ => {
            let s = a + b;
            if s.is_nan() { 0.0 } else { s }
        }
    };
    let mut result: BTreeMap<Bytes, f64> = BTreeMap::new();
    let weighted = |s: f64, w: f64| {
        let v = s * w;
        if v.is_nan() { 0.0 } else { v }
    };
    match op {
        "zunion" => {
            for (input, w) in inputs.iter().zip(&weights) {
                for (m, s) in input {
                    let v = weighted(*s, *w);
                    result
                        .entry(m.clone())
                        .and_modify(|acc| *acc = agg(*acc, v))
                        .or_insert(v);
                }
            }
        }
        "zinter" => {
            if let Some((first, rest)) = inputs.split_first() {
                'member: for (m, s) in first {
                    let mut acc = weighted(*s, weights[0]);
                    for (input, w) in rest.iter().zip(&weights[1..]) {
                        match input.get(m) {
                            Some(s) => acc = agg(acc, weighted(*s, *w)),
                            None => continue 'member,
                        }
                    }
                    result.insert(m.clone(), acc);
                }
            }
        }
        _ => {
            if let Some((first, rest)) = inputs.split_first() {
                for (m, s) in first {
                    if rest.iter().all(|input| !input.contains_key(m)) {
                        result.insert(m.clone(), *s);
                    }
                }
            }
        }
    }
    Ok((result, with_scores))
}
