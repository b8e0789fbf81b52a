"""The electronics store that generated inputs imitate: its products, its customers' cities
and streets, the hours and sizes of its orders, and the carriers that ship them.

Modelled on the public 2019 sales export of a US electronics store (popularities and hour
weights are its order-line counts, the first Order ID is its first); the cost ratios and
the carriers, which the export lacks, are plausible inventions for the two joined queries.
Pure data, apart from the machinery that draws from it (experiments/inputs/generate.py),
so what the generated data imitates can be read and changed in one place: a changed value
changes every generated input.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

# Relative weights of quantities 1, 2, 3, ...: cheap items are bought several at a time.
ALMOST_ALWAYS_ONE = (999, 1)  # phones, laptops, appliances
MOSTLY_ONE = (199, 1)  # monitors, TVs
HEADPHONE_QUANTITIES = (99, 1)
CABLE_QUANTITIES = (92, 6, 1.5, 0.5)
AAA_QUANTITIES = (68, 19, 7, 3, 3)  # mean about 1.5, as in the real data
AA_QUANTITIES = (76, 16, 5, 2, 1)  # mean about 1.35


@dataclass(frozen=True)
class Product:
    name: str
    price: str  # written as the real export writes it: "700", "11.95"
    category: str
    popularity: int  # relative share of order lines
    quantity_weights: tuple[float, ...]


PRODUCTS: tuple[Product, ...] = (
    Product("iPhone", "700", "Phones", 6842, ALMOST_ALWAYS_ONE),
    Product("Google Phone", "600", "Phones", 5525, ALMOST_ALWAYS_ONE),
    Product("Vareebadd Phone", "400", "Phones", 2065, ALMOST_ALWAYS_ONE),
    Product("Macbook Pro Laptop", "1700", "Laptops", 4724, ALMOST_ALWAYS_ONE),
    Product("ThinkPad Laptop", "999.99", "Laptops", 4128, ALMOST_ALWAYS_ONE),
    Product("27in 4K Gaming Monitor", "389.99", "Monitors", 6230, MOSTLY_ONE),
    Product("27in FHD Monitor", "149.99", "Monitors", 7507, MOSTLY_ONE),
    Product("34in Ultrawide Monitor", "379.99", "Monitors", 6181, MOSTLY_ONE),
    Product("20in Monitor", "109.99", "Monitors", 4101, MOSTLY_ONE),
    Product("Flatscreen TV", "300", "TVs", 4800, MOSTLY_ONE),
    Product("LG Washing Machine", "600", "Appliances", 666, ALMOST_ALWAYS_ONE),
    Product("LG Dryer", "600", "Appliances", 646, ALMOST_ALWAYS_ONE),
    Product("Apple Airpods Headphones", "150", "Headphones", 15549, HEADPHONE_QUANTITIES),
    Product("Bose SoundSport Headphones", "99.99", "Headphones", 13325, HEADPHONE_QUANTITIES),
    Product("Wired Headphones", "11.99", "Headphones", 18882, CABLE_QUANTITIES),
    Product("USB-C Charging Cable", "11.95", "Charging Cables", 21903, CABLE_QUANTITIES),
    Product("Lightning Charging Cable", "14.95", "Charging Cables", 21658, CABLE_QUANTITIES),
    Product("AAA Batteries (4-pack)", "2.99", "Batteries", 20641, AAA_QUANTITIES),
    Product("AA Batteries (4-pack)", "3.84", "Batteries", 20577, AA_QUANTITIES),
)

# unit_cost = list_price x ratio: a plausible margin per category for `category_revenue`.
COST_RATIO_BY_CATEGORY = {
    "Phones": Decimal("0.62"),
    "Laptops": Decimal("0.71"),
    "Monitors": Decimal("0.66"),
    "TVs": Decimal("0.73"),
    "Appliances": Decimal("0.69"),
    "Headphones": Decimal("0.48"),
    "Charging Cables": Decimal("0.31"),
    "Batteries": Decimal("0.42"),
}


@dataclass(frozen=True)
class City:
    name: str
    state: str
    state_name: str  # only used to write bad addresses ("..., Dallas, Texas")
    zip: str
    popularity: int


CITIES: tuple[City, ...] = (
    City("San Francisco", "CA", "California", "94016", 44732),
    City("Los Angeles", "CA", "California", "90001", 29605),
    City("New York City", "NY", "New York", "10001", 24876),
    City("Boston", "MA", "Massachusetts", "02215", 19934),
    City("Atlanta", "GA", "Georgia", "30301", 14881),
    City("Dallas", "TX", "Texas", "75001", 14820),
    City("Seattle", "WA", "Washington", "98101", 14732),
    City("Portland", "OR", "Oregon", "97035", 10010),
    City("Austin", "TX", "Texas", "73301", 9905),
    City("Portland", "ME", "Maine", "04101", 2455),
)

STREET_NAMES = (
    "1st",
    "2nd",
    "4th",
    "5th",
    "6th",
    "7th",
    "8th",
    "9th",
    "10th",
    "11th",
    "12th",
    "13th",
    "14th",
    "Main",
    "Park",
    "Oak",
    "Pine",
    "Maple",
    "Cedar",
    "Elm",
    "Washington",
    "Lake",
    "Hill",
    "Walnut",
    "Spruce",
    "Wilson",
    "Jackson",
    "Lincoln",
    "Church",
    "Center",
    "Ridge",
    "Highland",
    "Forest",
    "Sunset",
    "River",
    "Meadow",
    "Willow",
    "Cherry",
    "Dogwood",
    "Hickory",
    "Jefferson",
    "Madison",
    "Johnson",
    "Adams",
    "Chestnut",
    "Lakeview",
    "North",
    "South",
    "West",
    "Railroad",
)
STREET_SUFFIXES = (("St", 80), ("Ave", 8), ("Dr", 4), ("Rd", 3), ("Blvd", 2), ("Ln", 2), ("Way", 1))

# Order lines per hour of day (UTC) in the real data: peaks at noon and 19-20 h, trough 3-4 h.
HOUR_WEIGHTS = (
    3910,
    2350,
    1243,
    831,
    854,
    1321,
    2482,
    4011,
    6256,
    8748,
    10944,
    12411,
    12587,
    12129,
    10984,
    10175,
    10384,
    10899,
    12280,
    12905,
    12228,
    10921,
    8822,
    6275,
)

CARRIERS = (("UPS", 40), ("FedEx", 30), ("USPS", 22), ("DHL", 8))

# Order IDs: the export's first, and generated orders are numbered on from it.
FIRST_ORDER_ID = 141234
# Lines (distinct products) per order, by relative weight.
ORDER_SIZE_WEIGHTS = ((1, 95), (2, 4), (3, 1))  # ~5% of orders have 2-3 lines
