//! Names and attribute values that make the synthetic city read like Kashima.

use crate::rng::Rng;

/// Oaza (大字) of Kashima City.
pub const OAZA: &[&str] = &[
    "高津原",
    "納富分",
    "重ノ木",
    "山浦",
    "中村",
    "古枝",
    "浜",
    "音成",
    "飯田",
    "七浦",
    "能古見",
    "北鹿島",
    "常広",
    "森",
    "井手",
    "大村方",
    "横田",
    "三河内",
    "中川",
    "組方",
    "乙丸",
    "犬王袋",
    "大宇",
    "嘉瀬ノ浦",
];

/// The readings (読み仮名) of [`OAZA`], in katakana as registers keep them.
pub const OAZA_KANA: &[&str] = &[
    "タカツハラ",
    "ノウドミブン",
    "シゲノキ",
    "ヤマウラ",
    "ナカムラ",
    "フルエダ",
    "ハマ",
    "オトナリ",
    "ハンダ",
    "ナナウラ",
    "ノコミ",
    "キタカシマ",
    "ツネヒロ",
    "モリ",
    "イデ",
    "オオムラカタ",
    "ヨコタ",
    "ミカワチ",
    "ナカガワ",
    "クミカタ",
    "オトマル",
    "イヌオウブクロ",
    "オオウ",
    "カセノウラ",
];

/// The reading of an oaza name ("" for a name not in [`OAZA`]).
pub fn oaza_kana(oaza: &str) -> &'static str {
    OAZA.iter()
        .position(|o| *o == oaza)
        .map_or("", |i| OAZA_KANA[i])
}

/// Aza (字) names, the next level down.
pub const AZA: &[&str] = &[
    "本町",
    "新町",
    "東",
    "西",
    "上",
    "下",
    "中",
    "北",
    "南",
    "川端",
    "松原",
    "宮ノ前",
    "田中",
    "前田",
    "寺ノ下",
    "堤",
    "土井",
    "馬場",
    "小路",
    "大橋",
    "舟津",
];

const SURNAMES: &[&str] = &[
    "中島", "山口", "田中", "松尾", "古川", "井上", "江口", "峰", "北村", "山本", "中村", "池田",
    "森", "原", "溝口", "藤田", "吉田", "光武", "徳永", "大串",
];
const GIVEN: &[&str] = &[
    "太郎", "花子", "健一", "美咲", "誠", "裕子", "大輔", "恵", "浩二", "由美", "翔", "陽菜",
    "直樹", "和子", "隆", "幸子",
];

pub fn person(rng: &mut Rng) -> String {
    format!("{} {}", rng.pick(SURNAMES), rng.pick(GIVEN))
}

/// Land category (地目): built-up near the centre, paddies and fields further out.
pub fn chimoku(from_centre: f64, rng: &mut Rng) -> &'static str {
    let p = rng.unit();
    match from_centre {
        d if d < 500.0 => {
            if p < 0.8 {
                "宅地"
            } else if p < 0.9 {
                "雑種地"
            } else {
                "公衆用道路"
            }
        }
        d if d < 1000.0 => {
            if p < 0.5 {
                "宅地"
            } else if p < 0.8 {
                "田"
            } else {
                "畑"
            }
        }
        _ => {
            if p < 0.5 {
                "田"
            } else if p < 0.75 {
                "畑"
            } else if p < 0.9 {
                "山林"
            } else {
                "原野"
            }
        }
    }
}

pub struct Zone {
    pub name: &'static str,
    pub code: i64,
    pub coverage: i64,
    pub floor_area: i64,
    pub fire: &'static str,
}

/// 用途地域 by distance (in grid cells) from a district centre.
pub fn zone_for(r: f64, rng: &mut Rng) -> Zone {
    let z = |name, code, coverage, floor_area, fire| Zone {
        name,
        code,
        coverage,
        floor_area,
        fire,
    };
    match r {
        r if r < 0.5 => z("商業地域", 10, 80, 400, "防火地域"),
        r if r < 1.2 => {
            if rng.chance(0.5) {
                z("近隣商業地域", 9, 80, 200, "準防火地域")
            } else {
                z("第一種住居地域", 5, 60, 200, "準防火地域")
            }
        }
        r if r < 1.6 => match rng.below(3) {
            0 => z("第一種中高層住居専用地域", 3, 60, 200, "指定なし"),
            1 => z("第二種住居地域", 6, 60, 200, "指定なし"),
            _ => z("準工業地域", 11, 60, 200, "指定なし"),
        },
        _ => match rng.below(3) {
            0 => z("第一種低層住居専用地域", 1, 50, 80, "指定なし"),
            1 => z("第二種低層住居専用地域", 2, 50, 100, "指定なし"),
            _ => z("工業地域", 12, 60, 200, "指定なし"),
        },
    }
}

/// (diameter mm, material code, install year, pressure class) of a main.
pub fn pipe(network: &str, rng: &mut Rng) -> (i64, &'static str, i64, &'static str) {
    if network == "sewer" {
        let d = *rng.pick(&[200i64, 250, 300, 350, 450, 600]);
        let m = *rng.pick(&["HP", "VU", "VU", "PRP"]);
        (d, m, 1975 + rng.below(48) as i64, "自然流下")
    } else {
        let d = *rng.pick(&[50i64, 75, 100, 100, 150, 150, 200, 250, 300, 400]);
        let year = 1962 + rng.below(62) as i64;
        let m = if year < 1980 && rng.chance(0.6) {
            "CIP"
        } else {
            *rng.pick(&["DIP", "DIP", "VP", "PE", "SP"])
        };
        let p = if d >= 200 { "1.0MPa" } else { "0.75MPa" };
        (d, m, year, p)
    }
}

/// (type, rank, label) of the n-th hazard area.
pub fn hazard(n: usize, rng: &mut Rng) -> (&'static str, i64, &'static str) {
    match n % 4 {
        0 | 1 => {
            let rank = 1 + rng.below(4) as i64;
            let label = [
                "0.5m未満",
                "0.5m以上3.0m未満",
                "3.0m以上5.0m未満",
                "5.0m以上10.0m未満",
            ][rank as usize - 1];
            ("flood", rank, label)
        }
        2 => {
            if rng.chance(0.3) {
                ("landslide", 2, "土砂災害特別警戒区域")
            } else {
                ("landslide", 1, "土砂災害警戒区域")
            }
        }
        _ => {
            if rng.chance(0.5) {
                ("tsunami", 1 + rng.below(3) as i64, "津波浸水想定区域")
            } else {
                ("storm_surge", 1 + rng.below(3) as i64, "高潮浸水想定区域")
            }
        }
    }
}
