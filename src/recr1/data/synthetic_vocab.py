"""Word lists of the synthetic catalog: per-category product vocabularies and shared phrasing.

Categories are named like the released Amazon-C4 item pool names them (one short word), with the
Amazon domain each belongs to. Every slot word is a single lower-case token (brands are
capitalized) so that a word-level tokenizer sees each attribute as one token. The whole catalog
uses about 1,000 distinct words.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CategoryVocab:
    """Slot words of one category."""

    name: str          # the category as written in the item pool
    domain: str        # the Amazon domain name used for test data sources
    types: tuple[str, ...]
    brands: tuple[str, ...]
    features: tuple[str, ...]
    materials: tuple[str, ...]
    uses: tuple[str, ...]


def _w(text: str) -> tuple[str, ...]:
    return tuple(text.split())


CATEGORIES: tuple[CategoryVocab, ...] = (
    CategoryVocab(
        "Games", "Video_Games",
        _w("controller headset keyboard mouse joystick charger case stand mousepad wheel"),
        _w("Pixelforge Nexplay Arcadia Voltrix Gamecore Raptorix Lumina Zentro Kyroz Questar"),
        _w("wireless wired rechargeable backlit ergonomic programmable lightweight mechanical foldable "
           "adjustable silent portable"),
        _w("plastic aluminum rubber silicone steel nylon carbon leather"),
        _w("racing shooters streaming travel tournaments couch handheld retro"),
    ),
    CategoryVocab(
        "Baby", "Baby_Products",
        _w("stroller bottle bib crib blanket pacifier onesie carrier highchair playmat"),
        _w("Littlenest Cuddlebug Snugberry Tinytot Peapod Dreamling Babbleo Kiddora Softsprout Lullabee"),
        _w("organic washable hypoallergenic adjustable foldable breathable lightweight padded reversible "
           "insulated waterproof stretchy"),
        _w("cotton bamboo silicone muslin fleece wool plastic glass"),
        _w("newborns toddlers naps feeding travel nursery bedtime daycare"),
    ),
    CategoryVocab(
        "Office", "Office_Products",
        _w("stapler notebook binder pen desk chair organizer calculator planner lamp"),
        _w("Deskmate Papyra Inkwell Clerico Ledgerly Officio Scribo Quillton Filemax Workwise"),
        _w("refillable ergonomic adjustable sturdy erasable magnetic rechargeable cordless spiral lined "
           "stackable dimmable"),
        _w("leather steel bamboo plastic paper mesh aluminum wood"),
        _w("meetings school journaling accounting studying filing teachers students"),
    ),
    CategoryVocab(
        "Sports", "Sports_and_Outdoors",
        _w("backpack flask tent mat dumbbell racket helmet gloves jacket hammock"),
        _w("Trailpeak Summitra Ridgeline Aquafit Stridex Peakform Vortexa Ironvale Swiftrun Basecamp"),
        _w("waterproof insulated breathable lightweight adjustable padded reflective foldable durable "
           "ventilated quickdry nonslip"),
        _w("nylon polyester neoprene aluminum steel rubber foam carbon"),
        _w("hiking camping running yoga cycling climbing tennis gym"),
    ),
    CategoryVocab(
        "Home", "Home_and_Kitchen",
        _w("blender skillet kettle towel pillow vase knife mug rug curtain"),
        _w("Hearthly Kitchora Homestead Copperleaf Nestwell Bakewise Cozyden Olivine Tablecraft Dwellio"),
        _w("nonstick handmade insulated stackable cordless decorative absorbent blackout programmable "
           "reversible ergonomic dishwasher"),
        _w("ceramic stainless iron glass cotton linen wood copper"),
        _w("cooking baking breakfast guests bedroom kitchen entertaining holidays"),
    ),
    CategoryVocab(
        "Electronics", "Electronics",
        _w("headphones speaker cable router tablet earbuds monitor projector adapter camera"),
        _w("Sonique Voltra Nexon Ampliq Wavelink Hertzon Lumex Datacore Brightwave Audiora"),
        _w("wireless bluetooth waterproof rechargeable portable fast braided curved dual smart "
           "ultrathin touchscreen"),
        _w("aluminum plastic glass nylon silicone leather steel fabric"),
        _w("music movies commuting calls travel workouts presentations podcasts"),
    ),
    CategoryVocab(
        "Pets", "Pet_Supplies",
        _w("leash collar bed bowl crate brush feeder harness scratcher fountain"),
        _w("Pawsome Furbright Tailwag Whiskerly Barkwell Petopia Snoutly Kittix Muttmate Purrfect"),
        _w("chewproof reflective washable adjustable orthopedic automatic padded collapsible nonslip "
           "waterproof calming durable"),
        _w("nylon leather steel plush rubber bamboo ceramic fleece"),
        _w("puppies kittens walks grooming feeding travel training seniors"),
    ),
    CategoryVocab(
        "Beauty", "Beauty_and_Personal_Care",
        _w("serum moisturizer shampoo lipstick dryer mask cleanser perfume sunscreen conditioner"),
        _w("Glowra Velvetine Purelle Lumiere Silkara Dermaly Rosewell Auralis Bellora Skinova"),
        _w("vegan unscented hydrating organic matte waterproof gentle longlasting lightweight cordless "
           "ionic brightening"),
        _w("aloe argan charcoal coconut shea vitamin clay jojoba"),
        _w("oily sensitive curly mature acne summer evenings weddings"),
    ),
    CategoryVocab(
        "Tools", "Tools_and_Home_Improvement",
        _w("drill hammer wrench screwdriver saw ladder flashlight toolbox sander level"),
        _w("Torqmax Ironclad Boltwise Gritworks Sawtooth Forgeline Hexaline Rivetco Anvilor Craftmark"),
        _w("cordless magnetic rechargeable adjustable heavy compact folding brushless insulated ratcheting "
           "telescoping variable"),
        _w("steel titanium aluminum fiberglass rubber chrome carbide wood"),
        _w("woodworking plumbing automotive renovation garage outdoor electrical framing"),
    ),
    CategoryVocab(
        "Toys", "Toys_and_Games",
        _w("puzzle doll blocks robot kite truck teddy train dinosaur drone"),
        _w("Playwise Funjoy Tinkerly Brickle Wonderkin Zoomie Gigglo Toyrift Kidoodle Marvelo"),
        _w("educational interactive remote musical stackable magnetic glowing buildable talking washable "
           "battery solar"),
        _w("wood plastic plush foam cardboard felt metal fabric"),
        _w("preschoolers toddlers birthdays classrooms bathtime outdoors holidays families"),
    ),
)

COLORS = _w("black white red blue green gray pink navy beige purple yellow teal orange brown silver")
SIZES = _w("small medium large mini oversized regular")

# Item descriptions: the same slot sentences for every item, so that each attribute kind has the
# same term frequency everywhere and BM25 ranks by which words match, not by accidental repeats.
DESCRIPTION_SLOTS = (
    "This {type} from {Brand} is made of {material} and finished in {color}.",
    "Perfect for {use} and {use2}.",
)
DESCRIPTION_FILLER = (
    "Easy to use and easy to clean.",
    "Backed by a one year warranty.",
    "Makes a thoughtful gift for friends and family.",
    "Designed with quality and comfort in mind.",
    "Ships in recyclable packaging.",
    "Our customers love the value for the price.",
    "Tested for everyday use at home.",
    "A simple design that fits any style.",
    "Built to last for years.",
    "Please check the size chart before ordering.",
)

# Requests: an opening that names the product type, one sentence per mentioned attribute,
# generic filler, and sometimes another product that is not the one wanted.
REQUEST_OPENINGS = (
    "I am looking for a {type} for {who}.",
    "I need a new {type} because my old one finally stopped working.",
    "I want to buy a {type} as a present for {who}.",
    "Can you help me find a good {type} for {who}?",
    "I have been searching for the right {type} for a while now.",
    "My goal this week is to finally order a {type}.",
)
REQUEST_ATTRIBUTE_SENTENCES = {
    "brand": (
        "I have had good experiences with {value} so I would like to stick with that brand.",
        "Ideally it should be made by {value}.",
        "A friend recommended {value} to me and I trust her taste.",
    ),
    "color": (
        "I would really like it in {value}.",
        "The color matters to me and I want {value}.",
        "Something in {value} would match the rest of my things.",
    ),
    "material": (
        "I prefer something made of {value}.",
        "It should be made from {value} if possible.",
        "I find {value} nicer than anything else for this.",
    ),
    "feature": (
        "It has to be {value}.",
        "I really want one that is {value}.",
        "Being {value} is a must for me.",
    ),
    "size": (
        "A {value} one would fit best.",
        "I think the {value} size is right for me.",
    ),
}
REQUEST_USE_SENTENCES = (
    "Most of the time it will be used for {use}.",
    "We do a lot of {use} these days.",
    "I read that some people like these for {use} too.",
)
# A product that is not the one wanted, told as a short story that names it twice.
REQUEST_DISTRACTORS = (
    "My sister has a {Brand} {type} in {color} but it is not really what I want. "
    "Her {Brand} {type} is fine for her though.",
    "I already tried a {material} {type} from {Brand} and sent it back. "
    "That {Brand} {type} just did not work for me.",
    "Last year I bought a {color} {feature} {type} and it did not last long. "
    "The {feature} part stopped working first.",
    "The {Brand} {type} my neighbor uses is {color} and I did not like it. "
    "{Brand} is popular around here anyway.",
)
# Context naming catalog words that are NOT the target's: each sentence draws its words from one
# other product (of the same category half the time).
REQUEST_NOISE = (
    "I also still need a {Brand} {type} for {use} but that can wait.",
    "My coworker has a {color} {type} from {Brand} and keeps talking about it.",
    "Our old {material} {type} is still fine so I do not need another one.",
    "Everyone at work seems to own a {feature} {type} lately.",
    "Our living room is mostly {color} and {color2} so I notice colors a lot.",
    "I am a little allergic to {material} so that is something to think about.",
    "We go {use} almost every weekend.",
)
REQUEST_FILLER = (
    "Honestly I have been putting this off for weeks.",
    "My budget is not huge but I am willing to pay a bit more for quality.",
    "Shipping speed is not a big deal for me.",
    "I read a lot of reviews and got a bit overwhelmed.",
    "It needs to look nice because people will see it.",
    "I do not want something that breaks after a month.",
    "Our apartment is small so I try not to buy too much stuff.",
    "I am not an expert so please keep that in mind.",
    "The last few things I ordered online were a disappointment.",
    "My family keeps telling me to just pick something.",
    "I care more about how it feels than how it looks.",
    "It would be nice if it were easy to clean.",
    "I want it to arrive before the weekend if possible.",
    "Price is important but comfort matters more.",
    "I usually shop in stores but I am trying something new.",
    "We have a busy schedule with work and the kids.",
    "I would love something that lasts for years.",
    "Simple is better for me than fancy.",
    "Thanks in advance for any suggestions.",
    "I hope this is not too much to ask.",
    "Anything that makes daily life easier is welcome.",
    "My sister says I overthink these purchases.",
)
WHO = _w("myself my_son my_daughter my_wife my_husband my_mom my_dad my_friend my_roommate my_coworker")

REVIEW_PHRASES = {
    1: "Very disappointed with this one.",
    2: "Not great and not terrible.",
    3: "It is okay for the price.",
    4: "Really happy with it overall.",
    5: "Absolutely love it and would buy again.",
}
