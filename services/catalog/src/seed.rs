//! The demo catalog: 1,200 products in 12 categories, generated deterministically.
//!
//! The same ids, SKUs, names and prices on every machine, so a demo, a benchmark and a
//! bug report all talk about the same shop. A small seeded PRNG (SplitMix64) keeps the
//! generator free of dependencies; it needs to be repeatable, not unpredictable.

use std::collections::BTreeMap;

/// Products per category.
pub const PER_CATEGORY: usize = 100;

pub struct SeedCategory {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    /// SKU prefix.
    code: &'static str,
    /// Price range in whole currency units.
    price: (i64, i64),
    nouns: &'static [&'static str],
    adjectives: &'static [&'static str],
    brands: &'static [&'static str],
}

pub struct SeedProduct {
    pub id: String,
    pub sku: String,
    pub name: String,
    pub description: String,
    pub category_id: &'static str,
    pub price_minor: i64,
    pub attributes: BTreeMap<String, String>,
}

pub const CATEGORIES: &[SeedCategory] = &[
    SeedCategory {
        id: "electronics",
        name: "Electronics",
        description: "Audio, chargers, cameras and the gadgets in between.",
        code: "ELE",
        price: (9, 899),
        nouns: &[
            "Headphones",
            "Speaker",
            "Charger",
            "Power Bank",
            "Webcam",
            "Earbuds",
            "Smartwatch",
            "Action Camera",
            "Soundbar",
            "USB-C Hub",
        ],
        adjectives: &[
            "Wireless",
            "Compact",
            "Noise-Cancelling",
            "Rugged",
            "Fast",
            "Portable",
            "Studio",
            "Smart",
            "Slim",
            "Pro",
        ],
        brands: &["Voltra", "Sonique", "Kestrel", "Lumio", "Arcwave", "Nimbus"],
    },
    SeedCategory {
        id: "books",
        name: "Books",
        description: "Fiction, non-fiction and the classics, in print.",
        code: "BOK",
        price: (6, 59),
        nouns: &[
            "Novel",
            "Cookbook",
            "Field Guide",
            "Atlas",
            "Anthology",
            "Biography",
            "Handbook",
            "Poetry Collection",
            "Travelogue",
            "Workbook",
        ],
        adjectives: &[
            "Illustrated",
            "Collected",
            "Annotated",
            "Pocket",
            "Complete",
            "Essential",
            "Unabridged",
            "Modern",
            "Little",
            "Definitive",
        ],
        brands: &[
            "Quill & Co",
            "Harbor Press",
            "Northlight",
            "Paperkite",
            "Larkspur",
            "Old Mill",
        ],
    },
    SeedCategory {
        id: "home-kitchen",
        name: "Home & Kitchen",
        description: "Cookware, tableware and everything for the home.",
        code: "HOM",
        price: (5, 349),
        nouns: &[
            "Chef's Knife",
            "Dutch Oven",
            "Kettle",
            "Cutting Board",
            "Mug Set",
            "Frying Pan",
            "Teapot",
            "Storage Jars",
            "Table Lamp",
            "Throw Blanket",
        ],
        adjectives: &[
            "Cast-Iron",
            "Bamboo",
            "Ceramic",
            "Stainless",
            "Enamelled",
            "Linen",
            "Copper",
            "Stoneware",
            "Walnut",
            "Hand-Thrown",
        ],
        brands: &[
            "Hearth",
            "Kiln & Oak",
            "Copperline",
            "Nordhaus",
            "Saltbox",
            "Ember",
        ],
    },
    SeedCategory {
        id: "garden",
        name: "Garden",
        description: "Tools, planters and seeds for gardens of any size.",
        code: "GAR",
        price: (4, 299),
        nouns: &[
            "Trowel",
            "Pruning Shears",
            "Planter",
            "Watering Can",
            "Hose Reel",
            "Seed Kit",
            "Bird Feeder",
            "Raised Bed",
            "Garden Gloves",
            "Compost Bin",
        ],
        adjectives: &[
            "Galvanised",
            "Heavy-Duty",
            "Ergonomic",
            "Terracotta",
            "Cedar",
            "Foldable",
            "Self-Watering",
            "Organic",
            "Weatherproof",
            "Classic",
        ],
        brands: &[
            "Greenfinch",
            "Rootstock",
            "Meadowlark",
            "Thistle",
            "Fernway",
            "Bramble",
        ],
    },
    SeedCategory {
        id: "toys",
        name: "Toys & Games",
        description: "Puzzles, board games and toys for all ages.",
        code: "TOY",
        price: (5, 149),
        nouns: &[
            "Puzzle",
            "Board Game",
            "Building Set",
            "Plush Bear",
            "Kite",
            "Train Set",
            "Card Game",
            "Marble Run",
            "Doll House",
            "Science Kit",
        ],
        adjectives: &[
            "Wooden",
            "Magnetic",
            "Giant",
            "Classic",
            "Cooperative",
            "Glow-in-the-Dark",
            "Travel",
            "Deluxe",
            "Mini",
            "Family",
        ],
        brands: &[
            "Tinker Fox",
            "Playwright",
            "Bumblebee",
            "Marbleworks",
            "Kitefield",
            "Owlet",
        ],
    },
    SeedCategory {
        id: "sports",
        name: "Sports & Outdoors",
        description: "Gear for trails, courts, water and gym.",
        code: "SPO",
        price: (8, 599),
        nouns: &[
            "Yoga Mat",
            "Tent",
            "Water Bottle",
            "Backpack",
            "Tennis Racket",
            "Climbing Rope",
            "Sleeping Bag",
            "Headlamp",
            "Dumbbell Set",
            "Trekking Poles",
        ],
        adjectives: &[
            "Ultralight",
            "Insulated",
            "Waterproof",
            "Carbon",
            "Grippy",
            "Two-Person",
            "Adjustable",
            "Reflective",
            "Alpine",
            "Trail",
        ],
        brands: &[
            "Summitry",
            "Ridgeback",
            "Tidewater",
            "Peakform",
            "Cairn",
            "Vantage",
        ],
    },
    SeedCategory {
        id: "clothing",
        name: "Clothing",
        description: "Everyday wear, knitwear and outer layers.",
        code: "CLO",
        price: (9, 249),
        nouns: &[
            "Sweater",
            "T-Shirt",
            "Rain Jacket",
            "Chinos",
            "Scarf",
            "Hoodie",
            "Flannel Shirt",
            "Beanie",
            "Denim Jacket",
            "Socks (3-Pack)",
        ],
        adjectives: &[
            "Merino",
            "Organic Cotton",
            "Recycled",
            "Relaxed-Fit",
            "Cable-Knit",
            "Packable",
            "Heavyweight",
            "Linen",
            "Brushed",
            "Everyday",
        ],
        brands: &[
            "Woolly Mammoth",
            "Fieldnote",
            "Harbor & Pine",
            "Loomcraft",
            "Drift",
            "Common Thread",
        ],
    },
    SeedCategory {
        id: "shoes",
        name: "Shoes",
        description: "Sneakers, boots and sandals.",
        code: "SHO",
        price: (19, 289),
        nouns: &[
            "Running Shoes",
            "Hiking Boots",
            "Sneakers",
            "Sandals",
            "Loafers",
            "Chelsea Boots",
            "Slippers",
            "Trail Runners",
            "Rain Boots",
            "Court Shoes",
        ],
        adjectives: &[
            "Leather",
            "Lightweight",
            "Vegan",
            "Cushioned",
            "Waterproof",
            "Minimalist",
            "Suede",
            "Knit",
            "All-Terrain",
            "Classic",
        ],
        brands: &[
            "Stride",
            "Cobbler & Sons",
            "Footloose",
            "Trailmark",
            "Solace",
            "Pacer",
        ],
    },
    SeedCategory {
        id: "beauty",
        name: "Beauty & Care",
        description: "Skin care, hair care and grooming.",
        code: "BEA",
        price: (4, 119),
        nouns: &[
            "Face Cream",
            "Shampoo",
            "Lip Balm",
            "Beard Oil",
            "Body Wash",
            "Sunscreen",
            "Hand Soap",
            "Face Mask",
            "Hair Brush",
            "Shaving Kit",
        ],
        adjectives: &[
            "Fragrance-Free",
            "Hydrating",
            "Gentle",
            "Citrus",
            "Lavender",
            "Mineral",
            "Daily",
            "Travel-Size",
            "Refillable",
            "Botanical",
        ],
        brands: &[
            "Clearwater",
            "Petal & Stem",
            "Groomwell",
            "Aloe Grove",
            "Saltmarsh",
            "Verdant",
        ],
    },
    SeedCategory {
        id: "grocery",
        name: "Grocery",
        description: "Pantry staples, coffee, tea and treats.",
        code: "GRO",
        price: (2, 49),
        nouns: &[
            "Coffee Beans",
            "Green Tea",
            "Olive Oil",
            "Dark Chocolate",
            "Honey",
            "Pasta",
            "Granola",
            "Hot Sauce",
            "Sea Salt",
            "Maple Syrup",
        ],
        adjectives: &[
            "Single-Origin",
            "Organic",
            "Cold-Pressed",
            "Smoked",
            "Raw",
            "Artisan",
            "Fair-Trade",
            "Spicy",
            "Small-Batch",
            "Roasted",
        ],
        brands: &[
            "Larder",
            "Bean & Leaf",
            "Golden Hive",
            "Pantry Co",
            "Millstone",
            "Saltcellar",
        ],
    },
    SeedCategory {
        id: "office",
        name: "Office",
        description: "Desks, notebooks, pens and the tools of focused work.",
        code: "OFF",
        price: (3, 699),
        nouns: &[
            "Notebook",
            "Fountain Pen",
            "Desk Lamp",
            "Monitor Stand",
            "Desk Organizer",
            "Office Chair",
            "Planner",
            "Mechanical Keyboard",
            "Whiteboard",
            "Pencil Set",
        ],
        adjectives: &[
            "Dot-Grid",
            "Ergonomic",
            "Minimalist",
            "Leather-Bound",
            "Adjustable",
            "Oak",
            "Refillable",
            "Wireless",
            "Magnetic",
            "Compact",
        ],
        brands: &[
            "Inkwell",
            "Deskwise",
            "Paper Crane",
            "Focusline",
            "Graphite",
            "Ledger",
        ],
    },
    SeedCategory {
        id: "pets",
        name: "Pets",
        description: "Food, toys and beds for cats, dogs and friends.",
        code: "PET",
        price: (3, 199),
        nouns: &[
            "Dog Bed",
            "Cat Tree",
            "Leash",
            "Chew Toy",
            "Food Bowl",
            "Scratching Post",
            "Pet Carrier",
            "Treat Pouch",
            "Grooming Brush",
            "Aquarium Kit",
        ],
        adjectives: &[
            "Orthopedic",
            "Durable",
            "Washable",
            "Interactive",
            "Non-Slip",
            "Reflective",
            "Cozy",
            "Eco",
            "Elevated",
            "Travel",
        ],
        brands: &[
            "Pawsome",
            "Whisker & Wag",
            "Good Boy",
            "Kitterly",
            "Fetchwell",
            "Burrow",
        ],
    },
];

const COLORS: &[&str] = &[
    "Black", "White", "Slate", "Forest", "Navy", "Sand", "Rust", "Sage", "Plum", "Ochre",
];

/// SplitMix64: tiny, fast and fully determined by its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// The whole demo catalog, in SKU order.
pub fn products() -> Vec<SeedProduct> {
    let mut rng = Rng(0x00E4_B0C1_0000_2026);
    let mut out = Vec::with_capacity(CATEGORIES.len() * PER_CATEGORY);
    for category in CATEGORIES {
        for n in 1..=PER_CATEGORY {
            let brand = rng.pick(category.brands);
            let adjective = rng.pick(category.adjectives);
            let noun = rng.pick(category.nouns);
            let color = rng.pick(COLORS);
            let (low, high) = category.price;
            let whole = low + (rng.next() % (high - low + 1) as u64) as i64;
            // Shop prices end in .99, .49 or .00.
            let cents = [99, 49, 0][rng.below(3)];
            let price_minor = (whole * 100 + cents).max(99);
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&rng.next().to_le_bytes());
            id[8..].copy_from_slice(&rng.next().to_le_bytes());
            let id = uuid::Builder::from_random_bytes(id).into_uuid().to_string();
            let name = format!("{brand} {adjective} {noun}, {color}");
            let description = format!(
                "The {adjective} {noun} from {brand} in {color}, made for {}. \
                 Part of the {} range; covered by a two-year warranty.",
                category.description.trim_end_matches('.').to_lowercase(),
                category.name
            );
            let mut attributes = BTreeMap::new();
            attributes.insert("brand".to_string(), brand.to_string());
            attributes.insert("color".to_string(), color.to_string());
            attributes.insert("weight_g".to_string(), (50 + rng.below(5000)).to_string());
            out.push(SeedProduct {
                id,
                sku: format!("{}-{n:05}", category.code),
                name,
                description,
                category_id: category.id,
                price_minor,
                attributes,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn at_least_a_thousand_unique_deterministic_products() {
        let a = products();
        let b = products();
        assert!(a.len() >= 1000);
        assert!(CATEGORIES.len() >= 10);
        let ids: HashSet<_> = a.iter().map(|p| &p.id).collect();
        let skus: HashSet<_> = a.iter().map(|p| &p.sku).collect();
        assert_eq!(ids.len(), a.len());
        assert_eq!(skus.len(), a.len());
        assert!(
            a.iter()
                .zip(&b)
                .all(|(x, y)| x.id == y.id && x.price_minor == y.price_minor && x.name == y.name)
        );
        assert!(
            a.iter()
                .all(|p| p.price_minor > 0 && crate::domain::Sku::parse(&p.sku).is_ok())
        );
    }
}
