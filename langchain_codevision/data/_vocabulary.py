"""Word lists the renderers draw text from (plain English, no external files)."""

from __future__ import annotations

_WORD_TEXT = """
    a an as at by do go if in is it me my no of on or so to up us we
    act add age ago air all and any arm art ask bad bag bed big bit box boy bus buy
    can car cat cup cut day dog dry ear eat egg end eye far few fit fly for fun get
    hat her him his hot how ice job key kid lab law lay leg let lot low man map may
    mix net new not now odd oil old one our out own pay pen put red run sea see set
    she sky son sun tea ten the top toy try two use van war way wet who why win yes
    able area army away baby back ball band bank base bear beat best bird blue boat
    body bold book born both cake call calm card care case cell city club coat cold
    come cook cool copy corn cost crew dark data date deal deep desk door down draw
    drop dust each east easy edge else even face fact fair fall farm fast fear file
    fill film find fine fire fish five flat food foot form four free from full game
    gate gift girl give glad goal gold good gray grow hair half hall hand hard head
    hear heat help here high hill hold home hope hour idea iron item join jump just
    keep kind king lake land last late lead left less life lift line list long look
    lost loud love main make many mark meal meet mild mind mine miss moon more most
    move much must name near neck need news next nice nine none nose note open over
    page pair park part pass past path pick pink plan play pool poor port pull pure
    quick quiet radio raise range reach ready river road rock roof room root rope
    round route royal scale scene score sense seven shape share sharp sheet shelf
    shift shine shirt short shown sight silver simple skill sleep slow small smile
    smoke solid sound south space spare speak speed spend spent sport staff stage
    stair stand start state steam steel stick still stone store storm story straw
    study sugar table taken teach thick thing third three throw tiger title today
    total touch tower track trade train treat trial truck trust truth under union
    until upper usual valley value video visit voice waste watch water wheel while
    white whole window winter woman world worry write wrong yellow young
    account address animal answer autumn basket beauty before behind better bottle
    bridge bright button camera candle carpet castle center circle client coffee
    corner cotton county credit dinner doctor dollar double driver engine family
    farmer finger flower forest friend garden ground growth guitar harbor island
    jacket kettle ladder letter little market meadow middle minute mirror modern
    monkey mother narrow nature number object office orange palace pencil people
    pepper period person planet pocket purple rabbit reason record report rubber
    saddle school season second silent sister spring square statue street stripe
    summer supply symbol ticket timber tomato travel valley velvet violin weather
    balance blanket cabinet capital century chapter circuit compass concert country
    crystal current diamond evening example factory feather freedom gallery harvest
    history journey kitchen lantern library machine morning musical network orchard
    painter picture pottery railway station student sunrise theater thunder village
    whisper
"""
WORDS: tuple[str, ...] = tuple(dict.fromkeys(_WORD_TEXT.split()))
"""Common words of varied lengths (2 to 7 letters), no repeats."""

ITEMS: tuple[str, ...] = (
    "Coffee beans",
    "Whole milk",
    "Rye bread",
    "Green tea",
    "Olive oil",
    "Brown rice",
    "Apples 1kg",
    "Cheddar",
    "Oat flakes",
    "Tomatoes",
    "Pasta",
    "Honey jar",
    "Yogurt",
    "Orange juice",
    "Butter",
    "Eggs x12",
    "Dark chocolate",
    "Salmon fillet",
    "Sparkling water",
    "Basil pot",
    "Paper towels",
    "Dish soap",
    "Batteries AA",
    "Notebook",
)
"""Receipt line items."""

STORES: tuple[str, ...] = (
    "CORNER MARKET",
    "GREEN GROCER",
    "CITY FOODS",
    "HARBOR DELI",
    "NORTH STAR SHOP",
    "MAPLE PANTRY",
)
"""Store names printed on receipts."""

STREETS: tuple[str, ...] = (
    "MAPLE AVE",
    "OAK ST",
    "RIVER RD",
    "HILL ST",
    "MARKET SQ",
    "STATION RD",
    "PARK LANE",
    "HARBOR WAY",
    "CEDAR BLVD",
    "MILL ST",
    "LAKE DR",
    "BRIDGE ST",
)
"""Street names for signs."""

SIGN_PHRASES: tuple[str, ...] = (
    "NO PARKING",
    "EXIT",
    "SLOW DOWN",
    "KEEP LEFT",
    "LOADING ZONE",
    "BUS STOP",
    "WAY OUT",
    "STAFF ONLY",
    "PLATFORM",
    "CITY CENTRE",
)
"""Short sign phrases."""

ROW_NAMES: tuple[str, ...] = (
    "North",
    "South",
    "East",
    "West",
    "Central",
    "Coastal",
    "Inland",
    "Metro",
    "Valley",
    "Harbor",
)
"""Table row headers."""

MONTHS: tuple[str, ...] = (
    "Jan",
    "Feb",
    "Mar",
    "Apr",
    "May",
    "Jun",
    "Jul",
    "Aug",
    "Sep",
    "Oct",
    "Nov",
    "Dec",
)
"""Chart categories and table columns."""

CHART_TITLES: tuple[str, ...] = (
    "Monthly sales",
    "Visitors per month",
    "Rainfall (mm)",
    "Orders shipped",
    "Energy use (kWh)",
    "New members",
)
"""Bar chart titles."""
