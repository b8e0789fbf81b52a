"""Hand-made raw lines with the outcome docs/data-rules.md gives each (None: valid), which
every implementation of the rules is checked against. (A plain module: tests import it.)"""

BOM = "\ufeff"  # a UTF-8 byte-order mark, as decoded text
HEADER_LINE = "Order ID,Product,Quantity Ordered,Price Each,Order Date,Purchase Address"
GOOD = '176558,USB-C Charging Cable,2,11.95,04/19/19 08:46,"917 1st St, Dallas, TX 75001"'
ORDER_LINE_FIELDS = (
    "order_id",
    "product",
    "quantity",
    "price",
    "revenue",
    "order_ts",
    "street",
    "city",
    "state",
    "zip",
)
CASES = [
    (GOOD, None),
    ("Order ID,Product,Quantity Ordered,Price Each,Order Date,Purchase Address", "header"),
    (",,,,,", "blank"),
    ("", "blank"),
    ("  ,  ,,,,", "blank"),
    ("1,iPhone,1,700,04/19/19 08:46", "field_count"),
    ('1,iPhone,1,700,04/19/19 08:46,"1 A St, Dallas, TX 75001",extra', "field_count"),
    ('1,iPhone,1,700,04/19/19 08:46,"1 A St, Dallas, TX 75001', "field_count"),  # odd quotes
    ('1,,1,700,04/19/19 08:46,"1 A St, Dallas, TX 75001"', "missing_field"),
    ('1,iPhone,two,700,04/19/19 08:46,"1 A St, Dallas, TX 75001"', "bad_quantity"),
    ('1,iPhone,0,700,04/19/19 08:46,"1 A St, Dallas, TX 75001"', "bad_quantity"),
    ('1,iPhone,-1,700,04/19/19 08:46,"1 A St, Dallas, TX 75001"', "bad_quantity"),
    ('1,iPhone,1.5,700,04/19/19 08:46,"1 A St, Dallas, TX 75001"', "bad_quantity"),
    ('1,iPhone,1234567890,700,04/19/19 08:46,"1 A St, Dallas, TX 75001"', "bad_quantity"),
    ('1,iPhone,1,12.345,04/19/19 08:46,"1 A St, Dallas, TX 75001"', "bad_price"),
    ('1,iPhone,1,0.00,04/19/19 08:46,"1 A St, Dallas, TX 75001"', "bad_price"),
    ('1,iPhone,1,abc,04/19/19 08:46,"1 A St, Dallas, TX 75001"', "bad_price"),
    ('1,iPhone,1,700,02/29/19 08:46,"1 A St, Dallas, TX 75001"', "bad_date"),
    ('1,iPhone,1,700,13/01/19 08:46,"1 A St, Dallas, TX 75001"', "bad_date"),
    ('1,iPhone,1,700,01/01/19 24:00,"1 A St, Dallas, TX 75001"', "bad_date"),
    ('1,iPhone,1,700,1/1/19 08:46,"1 A St, Dallas, TX 75001"', "bad_date"),
    ('1,iPhone,1,700,2019-04-01 10:00,"1 A St, Dallas, TX 75001"', "bad_date"),
    ("1,iPhone,1,700,04/19/19 08:46,no commas here", "bad_address"),
    ('1,iPhone,1,700,04/19/19 08:46,"1 A St, Dallas"', "bad_address"),
    ('1,iPhone,1,700,04/19/19 08:46,"1 A St, Dallas, Texas"', "bad_address"),
    ('1,iPhone,1,700,04/19/19 08:46,"1 A St, Dallas, TX 7500"', "bad_address"),
    ('1,iPhone,1,700,04/19/19 08:46,"1 A St, Dallas, tx 75001"', "bad_address"),
    ('1,"Cable ""XL""",3,2.5,02/29/20 23:59,"9 B Ave, Portland, ME 04101"', None),
    (' 7 , AA Batteries (4-pack) , 4 , 3.84 , 12/31/99 00:00 ,"1 A St, Portland, OR 97035"', None),
    ('1,iPhone,1,700,04/19/19 08:46,"1 A St, Dallas, TX 75001"', None),
    # One byte-order mark at the start of a line is dropped before classifying (a file's own,
    # at its very start, never reaches the parsers: the line readers skip it).
    (BOM + HEADER_LINE, "header"),
    (BOM + GOOD, None),
    (BOM, "blank"),
    (BOM + ",,,,,", "blank"),
    (BOM + BOM + HEADER_LINE, "bad_quantity"),  # only one: the second is part of "Order ID"
    ('1,\ufeffiPhone,1,700,04/19/19 08:46,"1 A St, Dallas, TX 75001"', None),  # elsewhere: a character
    # Before any split: U+FFFD (what a line reader makes of bytes that are not UTF-8; a line that
    # holds one went through such a decoding), then a line too long to be an order line.
    ('1,iPhone,1,700,04/19/19 08:46,"1 A St, San Jos\ufffd, CA 95113"', "not_utf8"),
    ("\ufffd", "not_utf8"),
    ("x," * 2048 + "\ufffd", "not_utf8"),
    ("x," * 2048 + "x", "too_long"),  # 4,097 characters
    ("x," * 2048, "field_count"),  # 4,096: split as usual
    (BOM + "é" * 4096, "too_long"),  # characters, not bytes, the mark included
    ("é" * 4096, "field_count"),
]
