#!/usr/bin/env python3
"""Train the small bundled demo model of libllmgpu (models/demo/).

Everything comes from this file: the training text is generated here from a
small story grammar (deterministic from a seed; the text is the project's own,
under the project's licence), a Llama-2-style tokenizer (SentencePiece-style
BPE with byte fallback, 4096 tokens) is trained on it with HF `tokenizers`,
and a ~6.5M-parameter transformers LlamaForCausalLM is trained on it for a
fixed wall-clock budget on one GPU. The script then reloads the saved model
exactly as saved (f16 safetensors, upcast to f32, eager attention) and writes
the golden fixtures that the C tests compare against.

Usage (GPU machine, offline):
    python3 tools/train_demo_model.py --stage DIR [--train-seconds 330]
        writes DIR/models/demo/*  and  DIR/tests/fixtures/demo/golden.json
    python3 tools/train_demo_model.py --print-stories N [--seed S]
        prints N generated stories (needs no torch; for looking at the text)

The grammar part needs only the Python standard library; torch, transformers,
tokenizers and safetensors are imported only when training.
"""

import argparse
import hashlib
import json
import math
import os
import random
import time

TRAIN_SEED = 1234          # training stories: seed "1234-<i>"
HELDOUT_SEED = 98765       # held-out stories: a different seed
VOCAB_SIZE = 4096
MAX_POS = 512

# --------------------------------------------------------------------------
# 1. The story grammar
# --------------------------------------------------------------------------

NAMES_F = ["Lily", "Mia", "Lucy", "Rosie", "Daisy", "Ruby", "Ella", "Poppy",
           "Zoe", "Nora", "Ivy", "Luna", "Hazel", "Olive", "Anna", "Emma",
           "Sara", "Molly", "Grace", "Amy", "Kate", "Bella", "Clara", "Maya",
           "Tess", "Willow", "Fern", "Penny", "Holly", "Sophie", "Lola",
           "Millie", "Rose", "Jenny", "Dot", "Alice", "Beth", "Cora", "Edie",
           "Freya", "Gemma", "Hannah", "Iris", "Julia", "Kira", "Lena", "Mabel",
           "Nina", "Opal", "Pearl", "Quinn", "Rita", "Stella", "Tilly", "Una",
           "Vera", "Wren", "Yara", "Ada", "Bonnie", "Clementine", "Dora",
           "Elsie", "Flora", "Greta", "Heidi", "Josie", "Kitty", "Matilda",
           "Nell", "Phoebe"]
NAMES_M = ["Pip", "Max", "Tom", "Sam", "Ben", "Finn", "Milo", "Leo", "Oscar",
           "Jack", "Toby", "Hugo", "Otto", "Felix", "Jasper", "Bram", "Charlie",
           "Henry", "Theo", "Noah", "Alfie", "Ollie", "Rory", "Teddy", "Archie",
           "Billy", "Danny", "Timmy", "Robin", "Sid", "Ned", "Gus", "Kit",
           "Barney", "Joe", "Arlo", "Basil", "Cody", "Dexter", "Eddie",
           "Frankie", "George", "Harry", "Ivan", "Jonah", "Kevin", "Louis",
           "Marty", "Nico", "Otis", "Percy", "Ralph", "Stanley", "Tucker",
           "Victor", "Walter", "Zack", "Arthur", "Benny", "Chester", "Dudley",
           "Ernie", "Fred", "Gilbert", "Harvey", "Iggy", "Jimmy", "Lenny",
           "Monty", "Norman", "Pablo", "Rufus", "Simon", "Tony", "Wally"]

# (singular, plural, sound verb, body part for a gesture)
ANIMALS = [
    ("rabbit", "rabbits", "twitched", "nose"), ("fox", "foxes", "swished", "tail"),
    ("bear", "bears", "rubbed", "tummy"), ("mouse", "mice", "twitched", "whiskers"),
    ("cat", "cats", "swished", "tail"), ("dog", "dogs", "wagged", "tail"),
    ("duck", "ducks", "flapped", "wings"), ("owl", "owls", "ruffled", "feathers"),
    ("frog", "frogs", "puffed", "cheeks"), ("squirrel", "squirrels", "fluffed", "tail"),
    ("hedgehog", "hedgehogs", "wiggled", "nose"), ("turtle", "turtles", "stretched", "neck"),
    ("bird", "birds", "flapped", "wings"), ("pig", "pigs", "wiggled", "snout"),
    ("goat", "goats", "shook", "head"), ("lamb", "lambs", "wiggled", "ears"),
    ("deer", "deer", "twitched", "ears"), ("badger", "badgers", "scratched", "head"),
    ("otter", "otters", "flicked", "tail"), ("beaver", "beavers", "slapped", "tail"),
    ("kitten", "kittens", "swished", "tail"), ("puppy", "puppies", "wagged", "tail"),
    ("bunny", "bunnies", "twitched", "nose"), ("chick", "chicks", "flapped", "wings"),
    ("pony", "ponies", "tossed", "mane"), ("lion", "lions", "shook", "mane"),
    ("elephant", "elephants", "swung", "trunk"), ("monkey", "monkeys", "scratched", "head"),
    ("penguin", "penguins", "flapped", "flippers"), ("mole", "moles", "rubbed", "nose"),
    ("dragon", "dragons", "flapped", "wings"), ("goose", "geese", "flapped", "wings"),
    ("giraffe", "giraffes", "stretched", "neck"), ("zebra", "zebras", "swished", "tail"),
    ("tiger", "tigers", "swished", "tail"), ("koala", "koalas", "rubbed", "ears"),
    ("panda", "pandas", "rubbed", "tummy"), ("hippo", "hippos", "wiggled", "ears"),
    ("kangaroo", "kangaroos", "thumped", "tail"), ("seal", "seals", "clapped", "flippers"),
    ("snail", "snails", "wiggled", "horns"), ("ladybug", "ladybugs", "fluttered", "wings"),
    ("hamster", "hamsters", "twitched", "whiskers"), ("parrot", "parrots", "ruffled", "feathers"),
    ("raccoon", "raccoons", "rubbed", "paws"), ("wolf", "wolves", "swished", "tail"),
    ("sheep", "sheep", "shook", "head"), ("cow", "cows", "swished", "tail"),
    ("hen", "hens", "flapped", "wings"), ("swan", "swans", "stretched", "neck"),
    ("camel", "camels", "shook", "head"), ("robin", "robins", "fluttered", "wings"),
    ("armadillo", "armadillos", "wiggled", "nose"), ("bat", "bats", "flapped", "wings"),
    ("bison", "bison", "shook", "head"), ("chipmunk", "chipmunks", "twitched", "whiskers"),
    ("crab", "crabs", "clicked", "claws"), ("crocodile", "crocodiles", "swished", "tail"),
    ("dolphin", "dolphins", "flapped", "flippers"), ("donkey", "donkeys", "twitched", "ears"),
    ("eagle", "eagles", "ruffled", "feathers"), ("flamingo", "flamingos", "ruffled", "feathers"),
    ("gecko", "geckos", "flicked", "tail"), ("gorilla", "gorillas", "scratched", "head"),
    ("hare", "hares", "twitched", "ears"), ("lemur", "lemurs", "swished", "tail"),
    ("leopard", "leopards", "swished", "tail"), ("lizard", "lizards", "flicked", "tail"),
    ("llama", "llamas", "wiggled", "ears"), ("meerkat", "meerkats", "scratched", "head"),
    ("moose", "moose", "shook", "antlers"), ("octopus", "octopuses", "waved", "arms"),
    ("ostrich", "ostriches", "ruffled", "feathers"), ("peacock", "peacocks", "fanned", "feathers"),
    ("pelican", "pelicans", "flapped", "wings"), ("porcupine", "porcupines", "wiggled", "nose"),
    ("puffin", "puffins", "flapped", "wings"), ("rhino", "rhinos", "shook", "head"),
    ("sloth", "sloths", "stretched", "arms"), ("stork", "storks", "flapped", "wings"),
    ("toad", "toads", "puffed", "cheeks"), ("toucan", "toucans", "ruffled", "feathers"),
    ("walrus", "walruses", "wiggled", "whiskers"), ("weasel", "weasels", "swished", "tail"),
    ("whale", "whales", "flapped", "tail"), ("wombat", "wombats", "rubbed", "nose"),
    ("yak", "yaks", "shook", "head"), ("alpaca", "alpacas", "wiggled", "ears"),
    ("beetle", "beetles", "wiggled", "legs"), ("caterpillar", "caterpillars", "wiggled", "toes"),
    ("ferret", "ferrets", "twitched", "nose"), ("gosling", "goslings", "flapped", "wings"),
]
KIDS = [("girl", "f"), ("boy", "m")]

CHAR_ADJ = ["little", "small", "brave", "curious", "shy", "kind", "happy",
            "clever", "sleepy", "playful", "gentle", "busy", "friendly", "tiny",
            "young", "silly", "quiet", "cheerful", "fluffy", "bright", "cheeky",
            "careful", "funny", "lively"]

PLACES = [
    "near the old mill", "in a cozy burrow under a big oak tree",
    "in a small house by the river", "on a farm at the edge of the village",
    "in a green forest full of tall trees", "by the sea, where the waves were loud",
    "at the top of a windy hill", "in a busy little town", "next to a quiet pond",
    "in a garden full of flowers", "in a warm nest high in a tree",
    "in a yellow house with a red door", "near a big meadow",
    "behind the old bakery", "in a tiny cottage in the woods",
    "by a little stream", "in a valley between two mountains",
    "at the end of a long, winding road", "in a hollow log by the lake",
    "under a bridge near the park", "in a barn full of hay",
    "in a little village by the sea", "near a field of sunflowers",
]

FAMILY = [("mom", "f"), ("dad", "m"), ("grandma", "f"), ("grandpa", "m"),
          ("big sister", "f"), ("big brother", "m"), ("aunt", "f"), ("uncle", "m")]

ACTIVITIES = [
    "play in the mud", "run in the tall grass", "read books", "sing songs",
    "pick flowers", "climb trees", "jump in puddles", "look at the stars",
    "paint pictures", "build towers with blocks", "swim in the pond",
    "chase butterflies", "bake cookies", "play hide and seek", "dance in the rain",
    "collect shiny stones", "watch the clouds", "fly a kite", "draw with chalk",
    "splash in the river", "roll down the hill", "count the birds",
    "make mud pies", "listen to stories", "play on the swings", "hum little tunes",
    "dig in the garden", "play with a ball", "make daisy chains",
]

COLORS = ["red", "blue", "green", "yellow", "orange", "purple", "pink", "brown",
          "white", "shiny", "striped", "spotted", "golden", "silver"]
# (noun, plural?)  plural objects take "them"
OBJECTS = [("ball", False), ("kite", False), ("hat", False), ("scarf", False),
           ("toy boat", False), ("teddy bear", False), ("doll", False),
           ("drum", False), ("book", False), ("shell", False), ("button", False),
           ("ring", False), ("blanket", False), ("cup", False), ("bell", False),
           ("key", False), ("marble", False), ("crayon", False), ("box", False),
           ("basket", False), ("balloon", False), ("whistle", False),
           ("mittens", True), ("boots", True), ("toy train", False),
           ("umbrella", False), ("bucket", False), ("spoon", False),
           ("feather", False), ("little car", False), ("paintbrush", False)]

FOODS = ["apples", "cookies", "berries", "carrots", "cherries", "muffins", "nuts",
         "plums", "pears", "sandwiches", "grapes", "pancakes", "strawberries",
         "biscuits", "cupcakes", "acorns", "seeds", "oranges", "peaches"]
FOOD_ONE = ["cake", "pie", "honey", "bread", "cheese", "soup", "jam", "milk",
            "porridge", "lemonade"]

HIDING = ["under the bed", "behind the big tree", "near the pond", "in the tall grass",
          "under a pile of leaves", "behind the door", "in the garden",
          "under the table", "next to the fence", "in the old shed",
          "by the river", "on top of the hill", "inside a hollow log",
          "under the bush", "in the toy box", "behind the flower pots"]
FOUND_PLACES = ["in the basket by the door", "under a pile of leaves",
                "in a bird's nest", "inside {friend_his} coat pocket",
                "on the kitchen chair", "under {his} own pillow",
                "in the mud by the pond", "on a high branch",
                "behind the big rock", "in the laundry basket"]

TIMES = ["One sunny morning", "One day", "One rainy afternoon", "Early one morning",
         "One cold winter day", "One warm summer evening", "On a windy autumn day",
         "One spring morning", "One bright day", "One snowy morning",
         "Late one afternoon", "One cloudy day", "On a hot summer day"]

FRIEND_TRAITS = ["was very kind", "always had good ideas", "was very fast",
                 "could jump very high", "knew every path in the forest",
                 "loved to laugh", "was a little shy", "was very strong",
                 "could sing the sweetest songs", "was a good listener"]

FEARS = [("the dark", "dark", "the night"), ("thunder", "loud", "the storm"),
         ("deep water", "deep", "the lake"), ("the big dog next door", "big", "the dog"),
         ("high places", "high", "the tall tree"), ("the wind", "loud", "the wind")]

GAMES = ["hide and seek", "tag", "catch", "hopscotch", "a game of pretend",
         "leapfrog", "a race to the big tree", "follow the leader"]

MORALS = [
    "{name} learned that friends make hard things easy.",
    "{name} learned that it is good to share.",
    "{name} learned that being brave does not mean you are never scared.",
    "{name} learned that telling the truth is always best.",
    "{name} learned that it is good to help others.",
    "{name} learned that good things take time.",
    "{name} learned that a kind word can make a big difference.",
    "{name} learned that everyone makes mistakes.",
    "{name} learned to be patient.",
    "{name} learned that it is fun to try new things.",
]

FINAL_ONE = ["And {he} lived happily ever after.", "The end.",
             "It was the best day ever.", "{He} never forgot that day.",
             "That night, {name} went to sleep with a big smile.",
             "{name} could not wait for tomorrow."]
FINAL = ["And {they} lived happily ever after.", "The end.",
         "It was the best day ever.", "{They} never forgot that day.",
         "That night, {name} went to sleep with a big smile.",
         "{Name} could not wait for tomorrow.",
         "From that day on, {they} were the best of friends."]


# invented village and family names: prefix + suffix
TOWN_A = ["Apple", "Willow", "Maple", "Honey", "Bramble", "Clover", "Pebble", "Thistle",
          "Fern", "Moss", "Acorn", "Berry", "Bluebell", "Buttercup", "Cherry", "Daisy",
          "Hazel", "Holly", "Juniper", "Lavender", "Meadow", "Nettle", "Oak", "Pine",
          "Poppy", "Rose", "Sage", "Sorrel", "Sunny", "Tansy", "Ember", "Frost", "Misty",
          "Silver", "Golden", "Little", "Old", "Green", "Stony", "Windy"]
TOWN_B = ["brook", "dale", "ton", "field", "wood", "ford", "bury", "wick", "stead",
          "combe", "mere", "vale", "hill", "by", "haven", "bridge", "gate", "marsh"]
FAM_A = ["Button", "Thimble", "Copper", "Feather", "Whisker", "Puddle", "Hedge", "Nutmeg",
         "Pepper", "Bumble", "Tumble", "Wiggle", "Cobble", "Barley", "Marble", "Tinker",
         "Pickle", "Muffin", "Noodle", "Biscuit", "Sparkle", "Doodle", "Jingle", "Crumble"]
FAM_B = ["wood", "worth", "foot", "berry", "bottom", "field", "by", "kin", "ton", "well",
         "nose", "toes", "paws", "sworth"]


def town(r):
    return r.choice(TOWN_A) + r.choice(TOWN_B)


def family_name(r):
    return r.choice(FAM_A) + r.choice(FAM_B)


def cap(s):
    return s[:1].upper() + s[1:]


def a_an(word):
    return ("an " if word[:1].lower() in "aeiou" else "a ") + word


class Who:
    """A character: name, kind ('rabbit', 'girl'), gender and pronouns."""

    def __init__(self, name, kind, sex, plural_kind=None, sound="wagged", part="tail",
                 adj="little"):
        self.name, self.kind, self.sex = name, kind, sex
        self.plural_kind = plural_kind or kind + "s"
        self.sound, self.part, self.adj = sound, part, adj
        self.he = "he" if sex == "m" else "she"
        self.him = "him" if sex == "m" else "her"
        self.his = "his" if sex == "m" else "her"
        self.himself = "himself" if sex == "m" else "herself"


class Story:
    def __init__(self, rng):
        self.r = rng
        self.out = []

    # helpers
    def pick(self, seq):
        return self.r.choice(seq)

    def maybe(self, p=0.5):
        return self.r.random() < p

    def say(self, s):
        self.out.append(s)

    def new_char(self, exclude=(), kind=None):
        r = self.r
        if kind is None and r.random() < 0.8:
            a = r.choice(ANIMALS)
            sex = r.choice("mf")
            names = NAMES_M if sex == "m" else NAMES_F
            name = r.choice([n for n in names if n not in exclude])
            return Who(name, a[0], sex, a[1], a[2], a[3], r.choice(CHAR_ADJ))
        if kind is not None:
            a = next(x for x in ANIMALS if x[0] == kind)
            sex = r.choice("mf")
            names = NAMES_M if sex == "m" else NAMES_F
            name = r.choice([n for n in names if n not in exclude])
            return Who(name, a[0], sex, a[1], a[2], a[3], r.choice(CHAR_ADJ))
        k, sex = r.choice(KIDS)
        names = NAMES_M if sex == "m" else NAMES_F
        name = r.choice([n for n in names if n not in exclude])
        return Who(name, k, sex, k + "s", "waved", "hand", r.choice(CHAR_ADJ))

    def text(self):
        return " ".join(self.out)


def opening(st, c):
    r = st.r
    place = r.choice(PLACES) if r.random() < 0.6 else f"in the village of {town(r)}"
    forms = [
        lambda: f"Once upon a time, there was {a_an(c.adj)} {c.kind} named {c.name} who lived {place}.",
        lambda: f"Once upon a time, there was {a_an(c.adj)} {c.kind} named {c.name}.",
        lambda: f"Once upon a time, {place}, there lived {a_an(c.adj)} {c.kind} called {c.name}.",
        lambda: f"Once upon a time, there lived {a_an(c.adj)} {c.kind}. {cap(c.his)} name was {c.name}.",
        lambda: f"Once upon a time, {a_an(c.adj)} {c.kind} named {c.name} lived {place}.",
        lambda: f"There was once {a_an(c.adj)} {c.kind} named {c.name} who lived {place}.",
        lambda: f"{c.name} was {a_an(c.adj)} {c.kind} who lived {place}.",
        lambda: f"Once there was {a_an(c.adj)} {c.kind} called {c.name}.",
    ]
    w = [6, 4, 3, 2, 2, 2, 2, 1]
    st.say(r.choices(forms, weights=w)[0]())
    # one or two sentences about the character
    acts = r.sample(ACTIVITIES, 2)
    more = [
        f"{cap(c.he)} loved to {acts[0]}.",
        f"{cap(c.he)} loved to {acts[0]} and {acts[1]}.",
        f"Every day, {c.name} liked to {acts[0]}.",
        f"{c.name} liked to {acts[0]} more than anything.",
        f"{cap(c.his)} favorite thing was to {acts[0]}.",
        f"{c.name} was always {r.choice(['happy', 'busy', 'curious', 'cheerful', 'kind'])}, and {c.he} loved to {acts[0]}.",
    ]
    st.say(r.choice(more))
    if st.maybe(0.3):
        st.say(r.choice([
            f"{cap(c.he)} lived with {c.his} {r.choice(FAMILY)[0]}.",
            f"{cap(c.he)} had a soft {r.choice(COLORS)} coat and big {r.choice(['brown', 'black', 'blue', 'green'])} eyes.",
            f"Everyone in the {r.choice(['forest', 'village', 'town', 'farm', 'meadow'])} knew {c.name}.",
            f"{cap(c.he)} was the smallest {c.kind} {place}.",
        ]))


def friend_intro(st, c, f):
    r = st.r
    st.say(r.choice([
        f"{cap(c.his)} best friend was {a_an(f.adj)} {f.kind} named {f.name}.",
        f"{c.name} had a friend, {a_an(f.kind)} named {f.name}.",
        f"{c.name}'s best friend was {f.name} the {f.kind}.",
        f"{c.name} often played with {f.name}, {a_an(f.adj)} {f.kind} who lived nearby.",
    ]))
    if st.maybe(0.5):
        st.say(f"{f.name} {r.choice(FRIEND_TRAITS)}.")


def ending(st, c, others=(), moral=None):
    r = st.r
    if moral is not None and st.maybe(0.6):
        st.say(moral.format(name=c.name))
    if st.maybe(0.6):
        if others:
            st.say(r.choice(FINAL).format(name=c.name, Name=c.name, they="they", They="They"))
        else:
            st.say(r.choice(FINAL_ONE).format(name=c.name, he=c.he, He=cap(c.he)))


def obj_phrase(r):
    o, pl = r.choice(OBJECTS)
    col = r.choice(COLORS)
    return f"{col} {o}", pl


def plot_lost(st, c):
    r = st.r
    f = st.new_char(exclude=[c.name])
    friend_intro(st, c, f)
    thing, pl = obj_phrase(r)
    it = "them" if pl else "it"
    was = "were" if pl else "was"
    st.say(f"{c.name} had {'' if pl else 'a '}{thing}. ".replace(" a a", " a") +
           r.choice([f"{cap(c.he)} loved {it} very much.",
                     f"{cap(c.he)} took {it} everywhere {c.he} went.",
                     f"{cap(c.his)} {r.choice(FAMILY)[0]} had given {it} to {c.him}."]))
    st.say(f"{r.choice(TIMES)}, {c.name} could not find {c.his} {thing}.")
    st.say(r.choice([f"{cap(c.he)} felt very sad.", f"{cap(c.he)} was very worried.",
                     f"{c.name} started to cry.", f"{cap(c.his)} eyes filled with tears."]))
    spots = r.sample(HIDING, 3)
    st.say(f"{cap(c.he)} looked {spots[0]}, but it was not there.".replace(
        "it was", f"{it} {was}").replace("them was", "them were").replace("it were", "it was"))
    st.say(f"{cap(c.he)} looked {spots[1]} and {spots[2]}, but {c.he} could not find {it}.")
    st.say(f"Then {c.name} went to see {f.name}.")
    st.say(r.choice([f"\"{f.name}, can you help me find my {thing}?\" asked {c.name}.",
                     f"\"I lost my {thing},\" said {c.name}. \"Will you help me look?\""]))
    st.say(r.choice([f"\"Of course I will help you,\" said {f.name}.",
                     f"\"Don't worry, we will find {it} together,\" said {f.name}.",
                     f"{f.name} smiled and said, \"Let's look together.\""]))
    place = r.choice(FOUND_PLACES).format(friend_his=f.his, his=c.his)
    st.say(f"The two friends looked everywhere. At last, {f.name} found the {thing} {place}!")
    st.say(r.choice([f"\"Here {'they are' if pl else 'it is'}!\" shouted {f.name}.",
                     f"\"Look, {c.name}!\" said {f.name}."]))
    st.say(r.choice([f"{c.name} was so happy. {cap(c.he)} gave {f.name} a big hug.",
                     f"{c.name} jumped with joy and thanked {f.name}.",
                     f"{c.name} smiled a big smile. \"Thank you, {f.name}!\" {c.he} said."]))
    ending(st, c, [f], r.choice([MORALS[0], MORALS[6]]))


def plot_new_friend(st, c):
    r = st.r
    f = st.new_char(exclude=[c.name])
    st.say(f"{r.choice(TIMES)}, a new {f.kind} came to live {r.choice(PLACES)}.")
    st.say(f"{cap(f.his)} name was {f.name}, and {f.he} was very shy.")
    st.say(r.choice([f"{f.name} sat alone and did not play with anyone.",
                     f"{f.name} stood by the fence and watched the others play.",
                     f"Nobody talked to {f.name}, and {f.he} felt lonely."]))
    st.say(f"{c.name} saw that {f.name} looked sad.")
    st.say(r.choice([f"{cap(c.he)} walked over and said, \"Hello! My name is {c.name}. Do you want to play with me?\"",
                     f"\"Hi, {f.name}!\" said {c.name}. \"Would you like to play {r.choice(GAMES)} with me?\""]))
    st.say(r.choice([f"{f.name} smiled for the first time. \"Yes, please!\" {f.he} said.",
                     f"{f.name} looked up and nodded. \"I would like that very much,\" {f.he} said."]))
    game = r.choice(GAMES)
    st.say(f"They played {game} all afternoon.")
    st.say(r.choice([f"{f.name} laughed and laughed.", "They ran and jumped and laughed.",
                     f"{c.name} showed {f.name} all the best places to play."]))
    if st.maybe(0.5):
        st.say(f"When the sun went down, {f.name} said, \"Thank you for being my friend, {c.name}.\"")
    ending(st, c, [f], MORALS[6])


def plot_fear(st, c):
    r = st.r
    fear, adj, thing = r.choice(FEARS)
    fam, fsex = r.choice(FAMILY)
    st.say(f"But {c.name} had a secret. {cap(c.he)} was afraid of {fear}.")
    st.say(f"{r.choice(TIMES)}, {c.name} had to face {thing}.")
    st.say(r.choice([f"{cap(c.his)} legs began to shake.", f"{cap(c.his)} heart beat very fast.",
                     f"{cap(c.he)} wanted to run away and hide."]))
    st.say(f"{c.name} went to {c.his} {fam}. \"I am scared,\" {c.he} said.")
    hp = "he" if fsex == "m" else "she"
    st.say(r.choice([
        f"{cap(c.his)} {fam} gave {c.him} a hug. \"It is okay to be scared,\" {hp} said. \"I will be right here with you.\"",
        f"{cap(c.his)} {fam} held {c.his} hand. \"Take a deep breath,\" {hp} said. \"You are braver than you think.\"",
        f"{cap(c.his)} {fam} smiled. \"Let's do it together,\" {hp} said."]))
    st.say(f"{c.name} took a deep breath. {cap(c.he)} was still a little scared, but {c.he} did not run away.")
    st.say(r.choice([f"Soon, {thing} did not seem so {adj} anymore.",
                     f"After a while, {c.name} was not scared at all.",
                     f"{c.name} found out that {thing} was not so bad after all."]))
    st.say(f"{c.name} felt very proud of {c.himself}.")
    ending(st, c, [], MORALS[2])


def plot_help(st, c):
    r = st.r
    f = st.new_char(exclude=[c.name], kind=r.choice(["bird", "kitten", "duck", "mouse", "squirrel", "chick", "bunny"]))
    trouble = r.choice([
        ("had a hurt wing and could not fly", "made a little bed of leaves and brought water", "wing was better"),
        ("was stuck up in a tall tree", "found a long branch and helped", "was safe on the ground"),
        ("was lost and could not find the way home", "walked with", "was home again"),
        ("had fallen into a hole", "found a rope and pulled", "was out of the hole"),
        ("was caught in a bush", "gently moved the branches and freed", "was free"),
        ("was cold and hungry in the rain", "shared some food and a warm blanket with", "was warm and full"),
    ])
    st.say(f"{r.choice(TIMES)}, {c.name} was walking {r.choice(['near the pond', 'in the forest', 'by the river', 'across the meadow', 'down the road', 'in the park'])}.")
    st.say(f"Suddenly, {c.he} heard a little voice. \"Help! Help!\"")
    st.say(f"It was {a_an(f.adj)} {f.kind} named {f.name}. {cap(f.he)} {trouble[0]}.")
    st.say(r.choice([f"\"Don't worry,\" said {c.name}. \"I will help you.\"",
                     f"\"Oh no!\" said {c.name}. \"Let me help you.\""]))
    verb = trouble[1]
    if verb.endswith("with") or verb.endswith("pulled") or verb.endswith("helped") or verb.endswith("freed"):
        st.say(f"{c.name} {verb} {f.name}.")
    else:
        st.say(f"{c.name} {verb} for {f.name}.")
    if trouble[2] == "wing was better":
        st.say(f"After a few days, {f.name}'s wing was better.")
    else:
        st.say(f"Soon, {f.name} {trouble[2]}.")
    st.say(r.choice([f"\"Thank you, {c.name}!\" said {f.name}. \"You are a true friend.\"",
                     f"{f.name} was very thankful. \"You saved me!\" {f.he} said.",
                     f"{f.name} gave {c.name} a big hug."]))
    st.say(r.choice([f"{c.name} felt warm and happy inside.",
                     f"{c.name} smiled. Helping others made {c.him} feel good."]))
    ending(st, c, [f], MORALS[4])


def plot_share(st, c):
    r = st.r
    f = st.new_char(exclude=[c.name])
    food = r.choice(FOODS)
    fam = r.choice(FAMILY)[0]
    st.say(f"{r.choice(TIMES)}, {c.name}'s {fam} gave {c.him} a basket of {r.choice(['sweet', 'red', 'fresh', 'big', 'yummy', 'ripe'])} {food}.")
    st.say(f"\"These are all for me!\" thought {c.name}.")
    friend_intro(st, c, f)
    st.say(f"{f.name} looked at the {food}. {cap(f.his)} tummy made a loud noise.")
    st.say(r.choice([f"\"I have not eaten all day,\" said {f.name} quietly.",
                     f"\"Those look so good,\" said {f.name}."]))
    st.say(f"{c.name} looked at the basket. {cap(c.he)} wanted to keep all the {food} for {c.himself}.")
    st.say(f"But then {c.he} saw how hungry {f.name} was.")
    st.say(r.choice([f"\"Here, {f.name},\" said {c.name}. \"Let's share them.\"",
                     f"{c.name} gave half of the {food} to {f.name}."]))
    st.say(f"They sat together {r.choice(['under a big tree', 'by the river', 'on the soft grass', 'on a log', 'in the sun'])} and ate the {food}.")
    st.say(r.choice(["The food tasted even better when they shared it.",
                     f"{f.name} smiled, and {c.name} smiled too.",
                     "They talked and laughed until the basket was empty."]))
    ending(st, c, [f], MORALS[1])


def plot_trip(st, c):
    r = st.r
    fam, fsex = r.choice(FAMILY)
    dest = r.choice([("the beach", ["shells", "crabs", "big waves", "seagulls"]),
                     ("the park", ["ducks", "swings", "a big slide", "children playing"]),
                     ("the market", ["fruit", "flowers", "bread", "a man selling balloons"]),
                     ("the forest", ["mushrooms", "tall trees", "a deer", "a little stream"]),
                     ("the zoo", ["lions", "monkeys", "a tall giraffe", "penguins"]),
                     ("the farm", ["cows", "sheep", "a big red barn", "little chicks"]),
                     ("the lake", ["fish", "boats", "frogs", "ducks"])])
    hp = "he" if fsex == "m" else "she"
    st.say(f"{r.choice(TIMES)}, {c.name}'s {fam} said, \"Let's go to {dest[0]} today!\"")
    st.say(r.choice([f"{c.name} was so excited that {c.he} jumped up and down.",
                     f"{c.name} clapped {c.his} hands. \"Hooray!\" {c.he} said."]))
    things = r.sample(dest[1], 2)
    st.say(f"At {dest[0]}, {c.name} saw {things[0]} and {things[1]}.")
    event = r.randrange(4)
    if event == 0:
        st.say(f"Then dark clouds came, and it began to rain.")
        st.say(f"{c.name} and {c.his} {fam} ran under a big tree. They laughed as the rain fell all around them.")
        st.say("Soon the sun came out again, and there was a beautiful rainbow in the sky.")
    elif event == 1:
        thing, pl = obj_phrase(r)
        st.say(f"On the ground, {c.name} found {'' if pl else 'a '}{thing}.".replace("found a a", "found a"))
        st.say(f"\"Can I keep {'them' if pl else 'it'}?\" {c.he} asked. \"Yes, you can,\" said {c.his} {fam}.")
    elif event == 2:
        st.say(f"{c.name} ran too fast and fell down. {cap(c.he)} hurt {c.his} knee.")
        st.say(f"{cap(c.his)} {fam} gave {c.him} a hug, and soon {c.he} felt better.")
    else:
        food = r.choice(FOODS)
        st.say(f"They sat down and ate {food} for lunch. The {food} were very good.")
    st.say(r.choice([f"When it was time to go home, {c.name} was very tired.",
                     f"In the evening, they walked home together.",
                     f"On the way home, {c.name} fell asleep."]))
    st.say(r.choice([f"\"Thank you for today,\" {c.he} said to {c.his} {fam}.",
                     f"{cap(c.he)} told {c.his} friends all about {dest[0]}.",
                     f"{c.name} dreamed about {dest[0]} all night."]))
    ending(st, c, [], None)


def plot_bake(st, c):
    r = st.r
    fam, fsex = r.choice(FAMILY)
    hp = "he" if fsex == "m" else "she"
    thing = r.choice(["a cake", "cookies", "a pie", "bread", "muffins", "pancakes"])
    st.say(f"{r.choice(TIMES)}, {c.name} and {c.his} {fam} decided to make {thing}.")
    st.say(f"They got flour, sugar, eggs and milk. {c.name} put on a {r.choice(COLORS)} apron.")
    st.say(f"{c.name} wanted to help, so {c.he} poured the flour into the bowl.")
    oops = r.randrange(3)
    if oops == 0:
        st.say(f"Oh no! {cap(c.he)} poured too much, and flour went all over the kitchen.")
        st.say(f"{c.name}'s face was white with flour. {cap(c.his)} {fam} began to laugh, and {c.name} laughed too.")
    elif oops == 1:
        st.say(f"Then {c.he} dropped an egg on the floor. Crack!")
        st.say(f"\"I am sorry,\" said {c.name}. \"That is okay,\" said {c.his} {fam}. \"We have more eggs.\"")
    else:
        st.say(f"{c.name} stirred and stirred until {c.his} arm was tired.")
    st.say(f"They put it in the oven and waited. Soon the whole house smelled sweet and warm.")
    st.say(r.choice([f"When it was ready, they shared it with {r.choice(['their friends', 'the neighbors', 'the whole family'])}.",
                     f"It was the most delicious thing {c.name} had ever tasted.",
                     f"\"Yum!\" said {c.name}. \"This is the best!\""]))
    ending(st, c, [], MORALS[7] if oops < 2 else None)


def plot_snow(st, c):
    r = st.r
    f = st.new_char(exclude=[c.name])
    season = r.randrange(3)
    if season == 0:
        st.say(f"One winter morning, {c.name} looked out of the window. Everything was white with snow!")
        st.say(f"{c.name} put on {c.his} warm {r.choice(['red', 'blue', 'green', 'striped'])} scarf and ran outside.")
        st.say(f"{c.name} and {f.name} the {f.kind} built a big snowman. They gave it a carrot nose and two stones for eyes.")
        st.say(r.choice(["Then they made snow angels and threw snowballs.",
                         "Then they slid down the hill on a sled, again and again."]))
        st.say(f"When their noses were red and cold, they went inside for hot milk.")
    elif season == 1:
        st.say(f"One spring morning, {c.name} saw the first flowers in the meadow.")
        st.say(f"There were {r.choice(COLORS[:8])} flowers and {r.choice(COLORS[:8])} flowers everywhere.")
        st.say(f"{c.name} and {f.name} the {f.kind} picked some flowers for {c.name}'s {r.choice(FAMILY)[0]}.")
        st.say(f"Birds were singing, and the sun was warm.")
    else:
        st.say(f"On a windy autumn day, the leaves on the trees turned red and yellow.")
        st.say(f"{c.name} and {f.name} the {f.kind} made a big pile of leaves.")
        st.say(f"Then they jumped into it! The leaves flew up into the air.")
        st.say(f"They jumped again and again until they were tired.")
    st.say(r.choice([f"\"This is the best day ever,\" said {c.name}.",
                     f"{c.name} smiled. {cap(c.he)} loved this time of year."]))
    ending(st, c, [f], None)


def plot_birthday(st, c):
    r = st.r
    f = st.new_char(exclude=[c.name])
    st.say(f"{r.choice(TIMES)}, {c.name} remembered that it was {f.name}'s birthday.")
    st.say(f"{f.name} was {a_an(f.adj)} {f.kind} and {c.his} best friend.")
    st.say(f"{c.name} wanted to give {f.name} a special present, but {c.he} did not have any money.")
    gift = r.choice([("a card", "drew a picture of the two of them and wrote a message"),
                     ("a necklace", "found pretty stones and put them on a string"),
                     ("a crown", "made it out of flowers and leaves"),
                     ("a song", "made up a song with funny words"),
                     ("a little boat", "made it out of wood and a leaf for a sail")])
    st.say(f"So {c.he} decided to make {gift[0]}. {cap(c.he)} {gift[1]}.")
    st.say(f"At the party, there was cake and balloons and lots of friends.")
    st.say(f"{c.name} gave {f.name} the present. {c.name} was nervous. Would {f.name} like it?")
    st.say(r.choice([f"{f.name}'s eyes grew wide. \"I love it!\" {f.he} said. \"It is the best present of all.\"",
                     f"{f.name} smiled a big smile and gave {c.name} a hug."]))
    st.say(f"{c.name} felt so happy.")
    ending(st, c, [f], None)


def plot_honest(st, c):
    r = st.r
    fam, fsex = r.choice(FAMILY)
    hp, hh = ("he", "his") if fsex == "m" else ("she", "her")
    thing = r.choice(["vase", "plate", "cup", "bowl", "lamp", "jar"])
    st.say(f"{r.choice(TIMES)}, {c.name} was playing with a ball inside the house.")
    st.say(f"{cap(c.his)} {fam} had said, \"Please do not play ball in the house.\"")
    st.say(f"But {c.name} did not listen. {cap(c.he)} threw the ball high, and it hit {c.his} {fam}'s favorite {thing}.")
    st.say(f"Crash! The {thing} fell and broke into pieces.")
    st.say(f"{c.name} felt scared. {cap(c.he)} wanted to hide the pieces under the {r.choice(['rug', 'bed', 'sofa'])}.")
    st.say(f"Then {c.he} thought about it. \"I should tell the truth,\" {c.he} said to {c.himself}.")
    st.say(f"{c.name} went to {c.his} {fam}. \"I am sorry,\" {c.he} said. \"I broke your {thing}.\"")
    st.say(f"{cap(c.his)} {fam} was sad about the {thing}, but {hp} gave {c.name} a hug.")
    st.say(f"\"Thank you for telling me the truth,\" {hp} said. \"I am proud of you.\"")
    st.say(f"Together, they cleaned up the pieces.")
    ending(st, c, [], MORALS[3])


def plot_race(st, c):
    r = st.r
    f = st.new_char(exclude=[c.name])
    friend_intro(st, c, f)
    goal = r.choice(["the big tree", "the old bridge", "the red barn", "the top of the hill", "the pond"])
    st.say(f"{r.choice(TIMES)}, {f.name} said, \"Let's have a race to {goal}!\"")
    st.say(f"\"Ready, set, go!\" They ran as fast as they could.")
    st.say(f"{c.name} was in front. But then {c.he} heard a cry behind {c.him}.")
    st.say(f"{f.name} had tripped over a stone and fallen down.")
    st.say(f"{c.name} stopped. {cap(c.he)} could win the race, but {c.his} friend needed help.")
    st.say(f"{cap(c.he)} ran back and helped {f.name} get up. \"Are you okay?\" {c.he} asked.")
    st.say(f"\"I am okay,\" said {f.name}. \"Thank you for coming back.\"")
    st.say(f"They walked to {goal} together, side by side.")
    st.say(r.choice(["Nobody won the race, but they both felt like winners.",
                     f"\"Being friends is better than winning,\" said {c.name}."]))
    ending(st, c, [f], MORALS[4])


def plot_garden(st, c):
    r = st.r
    plant = r.choice([("seed", "a tall sunflower"), ("seed", "a red tomato plant"),
                      ("bean", "a big bean plant"), ("seed", "a pretty pink flower"),
                      ("seed", "a little apple tree"), ("seed", "a big orange pumpkin")])
    fam = r.choice(FAMILY)[0]
    st.say(f"{r.choice(TIMES)}, {c.name}'s {fam} gave {c.him} a tiny {plant[0]}.")
    st.say(f"\"Plant it in the garden,\" said {c.his} {fam}, \"and take good care of it.\"")
    st.say(f"{c.name} dug a little hole and put the {plant[0]} inside. Then {c.he} gave it some water.")
    st.say(f"The next day, {c.name} ran to the garden. Nothing was there.")
    st.say(f"\"When will it grow?\" {c.he} asked. \"Be patient,\" said {c.his} {fam}.")
    st.say(f"Every day, {c.name} watered the {plant[0]} and waited.")
    st.say(f"One morning, {c.he} saw a small green leaf coming out of the ground!")
    st.say(f"Day after day, it grew bigger and bigger. At last, it became {plant[1]}.")
    st.say(r.choice([f"{c.name} was so proud. \"I grew it all by myself!\" {c.he} said.",
                     f"{c.name} smiled. All that waiting was worth it."]))
    ending(st, c, [], r.choice([MORALS[5], MORALS[8]]))


def plot_new_thing(st, c):
    r = st.r
    f = st.new_char(exclude=[c.name])
    act = r.choice([("swim", "in the lake", "kicked {his} legs and moved {his} arms"),
                    ("ride a bike", "in the park", "pushed the pedals and held on tight"),
                    ("climb the big tree", "in the garden", "held on to the branches and went up slowly"),
                    ("whistle", "at home", "pushed {his} lips together and blew"),
                    ("skip", "in the yard", "hopped on one foot and then the other")])
    st.say(f"{c.name} wanted to learn to {act[0]}, but {c.he} did not know how.")
    st.say(f"{r.choice(TIMES)}, {c.he} tried {act[1]}, but it was very hard.")
    st.say(f"{c.name} felt sad. \"I will never learn,\" {c.he} said.")
    st.say(f"Then {f.name} the {f.kind} came by. \"I can help you,\" said {f.name}. \"Let's try together.\"")
    st.say(f"{f.name} showed {c.him} what to do. {c.name} " + act[2].format(his=c.his) + ".")
    st.say(f"{cap(c.he)} tried again and again. At first, it did not work.")
    st.say(f"But {c.name} did not give up. Then, at last, {c.he} did it!")
    st.say(r.choice([f"\"I can {act[0]}!\" shouted {c.name}. \"Look at me!\"",
                     f"{f.name} clapped. \"You did it, {c.name}!\" {f.he} said."]))
    ending(st, c, [f], r.choice([MORALS[9], MORALS[0]]))


def plot_night(st, c):
    r = st.r
    fam = r.choice(FAMILY)[0]
    st.say(f"One night, {c.name} could not sleep.")
    st.say(f"{cap(c.he)} looked out of the window at the big round moon and the bright stars.")
    st.say(f"\"I wonder what is up there,\" {c.he} said.")
    st.say(r.choice([f"{cap(c.his)} {fam} came in and sat on the bed.",
                     f"Just then, {c.his} {fam} came to say good night."]))
    st.say(f"\"The stars are like little lights that keep us safe,\" said {c.his} {fam}.")
    st.say(f"{cap(c.his)} {fam} told {c.him} a story about {a_an(r.choice(CHAR_ADJ))} {r.choice(ANIMALS)[0]} who flew to the moon.")
    st.say(f"{c.name}'s eyes grew heavy. {cap(c.he)} yawned a big yawn.")
    st.say(f"\"Good night,\" said {c.name}. \"Good night,\" said {c.his} {fam}.")
    st.say(f"Soon, {c.name} was fast asleep, dreaming about the stars.")
    ending(st, c, [], None)


def plot_treasure(st, c):
    r = st.r
    f = st.new_char(exclude=[c.name])
    where = r.choice(["in the attic", "inside an old bottle", "under a loose floorboard",
                      "in grandpa's old chest", "behind a dusty bookshelf", "in the sand by the sea"])
    st.say(f"{r.choice(TIMES)}, {c.name} found an old map {where}.")
    st.say(f"On the map there was a big red X. \"It is a treasure map!\" {c.he} cried.")
    st.say(f"{c.name} ran to tell {f.name} the {f.kind}, and they set off at once.")
    path = r.sample(["crossed a wooden bridge", "walked through a dark tunnel",
                     "climbed over a mossy wall", "followed a narrow path through the ferns",
                     "jumped over a muddy ditch", "passed a sleepy old windmill",
                     "waded across a shallow creek", "tiptoed past a snoring giant"], 3)
    st.say(f"They {path[0]}, {path[1]}, and {path[2]}.")
    st.say(f"At last they came to {a_an(r.choice(['crooked', 'giant', 'lonely', 'twisted', 'ancient']))} {r.choice(['willow tree', 'rock', 'tree stump', 'lighthouse', 'statue'])}. That was where the X was.")
    st.say(f"They dug and dug until they hit something hard. It was a wooden box!")
    prize = r.choice(["shiny gold coins", "beautiful glass beads", "a note that said, \"The real treasure is a good friend\"",
                      "old toys from long ago", "sparkly buttons and ribbons", "a tiny silver key and a poem"])
    st.say(f"Inside the box, there {'was' if prize.startswith('a') else 'were'} {prize}.")
    st.say(r.choice([f"{c.name} and {f.name} laughed and danced around the tree.",
                     f"\"We did it!\" shouted {f.name}.",
                     f"They carried the box home and showed it to everyone."]))
    ending(st, c, [f], r.choice([MORALS[0], None]))


def plot_castle(st, c):
    r = st.r
    ruler = r.choice(["king", "queen", "prince", "princess"])
    st.say(f"Far away, on a hill, there was a {r.choice(['tall', 'grand', 'pink', 'stone', 'sparkling'])} castle where a kind {ruler} lived.")
    trouble = r.choice([
        ("the castle garden had lost all its colors", "colors came back to every flower"),
        ("the castle bell would not ring", "bell rang loud and clear"),
        ("a grumpy troll had taken the castle's golden crown", "crown was back where it belonged"),
        ("the castle fountain had stopped working", "fountain splashed and sparkled again"),
    ])
    st.say(f"{r.choice(TIMES)}, everyone was sad, because {trouble[0]}.")
    st.say(f"The {ruler} said, \"Who can help us?\" Nobody knew what to do.")
    st.say(f"{c.name} the {c.kind} was small, but {c.he} was clever. \"I will try,\" {c.he} said.")
    helper = r.choice(["a wise old owl", "a friendly wizard", "a tiny fairy", "a talking frog", "a little magic star"])
    st.say(f"On the way, {c.name} met {helper}. \"To fix it, you must be kind and brave,\" it said.")
    if "troll" in trouble[0]:
        st.say(f"{c.name} went to the troll's cave. The troll was not mean, only lonely.")
        st.say(f"{c.name} sat with the troll and talked with him. The troll smiled and gave back the crown.")
    else:
        st.say(f"{c.name} {r.choice(['sang a gentle song', 'said a kind wish', 'worked hard all day', 'asked all the animals to help'])}, and something magic happened.")
    st.say(f"Soon the {trouble[1]}.")
    st.say(f"The {ruler} was so happy that there was a big party at the castle, with music and {r.choice(FOODS)}.")
    st.say(f"\"You are small, but you have a big heart,\" said the {ruler} to {c.name}.")
    ending(st, c, [], r.choice([MORALS[6], MORALS[4]]))


def plot_rocket(st, c):
    r = st.r
    f = st.new_char(exclude=[c.name])
    st.say(f"{r.choice(TIMES)}, {c.name} and {f.name} found a big empty box.")
    st.say(f"\"Let's make a rocket!\" said {c.name}. They painted the box {r.choice(COLORS[:9])} and cut out little round windows.")
    st.say(f"They climbed inside. \"Ten, nine, eight, seven, six, five, four, three, two, one... blast off!\" they shouted.")
    st.say(f"In their game, the rocket flew up past the clouds, past the birds, all the way to the moon.")
    st.say(f"On the moon, they saw {r.choice(['silver rocks', 'funny green aliens', 'big round craters', 'a sleepy moon bunny'])} and {r.choice(['shooting stars', 'the blue Earth far below', 'a comet with a long tail', 'lots of twinkling stars'])}.")
    st.say(f"\"Hello, moon!\" said {f.name}, and they both giggled.")
    st.say(f"Then {c.name}'s {r.choice(FAMILY)[0]} called, \"Time for dinner!\"")
    st.say(f"\"Rocket going home!\" said {c.name}. They flew back down to Earth and ran inside to eat.")
    ending(st, c, [f], None)


def plot_lost_forest(st, c):
    r = st.r
    st.say(f"{r.choice(TIMES)}, {c.name} went into the forest to pick {r.choice(['berries', 'mushrooms', 'flowers', 'pine cones', 'nuts'])}.")
    st.say(f"{cap(c.he)} walked further and further, and soon the trees were very tall and the path was gone.")
    st.say(f"{c.name} looked around. Nothing looked the same. \"Oh no, I am lost,\" {c.he} said.")
    st.say(f"It was getting dark, and the wind was cold. {c.name} sat down on a rock and felt like crying.")
    helper = st.new_char(exclude=[c.name], kind=r.choice(["owl", "fox", "deer", "badger", "squirrel", "hedgehog"]))
    st.say(f"Then {a_an(helper.adj)} {helper.kind} came out from behind a tree. {cap(helper.his)} name was {helper.name}.")
    st.say(f"\"Why are you sad?\" asked {helper.name}. \"I can't find my way home,\" said {c.name}.")
    st.say(f"\"I know this forest very well,\" said {helper.name}. \"Follow me.\"")
    st.say(f"{helper.name} led {c.name} along a little path, past the {r.choice(['big rock', 'old well', 'river', 'fallen tree'])}, until they saw the lights of home.")
    st.say(f"{c.name}'s {r.choice(FAMILY)[0]} was waiting at the door and gave {c.him} a big hug.")
    st.say(f"\"Thank you, {helper.name}!\" said {c.name}. \"Next time, I will stay on the path.\"")
    ending(st, c, [helper], None)


def plot_school(st, c):
    r = st.r
    f = st.new_char(exclude=[c.name])
    teacher = r.choice(["Miss Honey", "Mr. Brown", "Mrs. Green", "Miss Rose", "Mr. Oak", "Mrs. Plum"])
    st.say(f"It was {c.name}'s first day at school. {cap(c.he)} felt {r.choice(['nervous', 'a little scared', 'shy', 'excited and nervous'])}.")
    st.say(f"{cap(c.his)} {r.choice(FAMILY)[0]} packed {c.his} bag with {a_an(r.choice(['apple', 'sandwich', 'orange', 'muffin', 'banana']))} and a {r.choice(COLORS[:9])} pencil.")
    st.say(f"The teacher, {teacher}, had a kind smile. \"Welcome, {c.name},\" she said." if teacher.startswith("M") and not teacher.startswith("Mr.") else
           f"The teacher, {teacher}, had a kind smile. \"Welcome, {c.name},\" he said.")
    st.say(f"In class, they {r.choice(['learned to count to ten', 'painted with their fingers', 'sang a song about the rain', 'read a story about a big whale', 'learned the names of colors', 'built a tower of blocks'])}.")
    st.say(f"At lunch, {c.name} sat next to {a_an(f.adj)} {f.kind} named {f.name}.")
    st.say(f"\"Do you want to be friends?\" asked {f.name}. \"Yes!\" said {c.name}.")
    st.say(f"After school, {c.name} ran to {c.his} {r.choice(FAMILY)[0]}. \"School is fun!\" {c.he} said. \"I made a new friend.\"")
    ending(st, c, [f], None)


def plot_rainy_day(st, c):
    r = st.r
    f = st.new_char(exclude=[c.name])
    st.say(f"{r.choice(['One rainy morning', 'One gray, wet day', 'One stormy afternoon'])}, {c.name} could not go outside.")
    st.say(f"Rain tapped on the window. \"I am bored,\" said {c.name}.")
    st.say(f"Then {f.name} the {f.kind} knocked on the door. {cap(f.he)} was dripping wet.")
    st.say(f"\"Let's build a fort!\" said {f.name}. They used {r.choice(['chairs', 'pillows', 'cushions'])}, {r.choice(['blankets', 'sheets', 'towels'])} and a big {r.choice(['box', 'table', 'sofa'])}.")
    st.say(f"Inside the fort, they {r.choice(['read books with a flashlight', 'told funny stories', 'played cards', 'ate popcorn and sang songs', 'drew pictures of dragons'])}.")
    st.say(r.choice(["It was warm and cozy, and they forgot all about the rain.",
                     "They laughed so much that their tummies hurt."]))
    st.say(f"When the rain stopped, they looked out and saw a rainbow. \"Rainy days can be fun too,\" said {c.name}.")
    ending(st, c, [f], None)


def plot_pet(st, c):
    r = st.r
    pet = r.choice([("goldfish", "Bubbles"), ("puppy", "Biscuit"), ("kitten", "Whiskers"),
                    ("hamster", "Peanut"), ("turtle", "Shelly"), ("parrot", "Kiwi"), ("bunny", "Cotton")])
    st.say(f"{c.name} wanted a pet more than anything in the world.")
    st.say(f"\"A pet is a lot of work,\" said {c.his} {r.choice(FAMILY)[0]}. \"You must feed it and love it every day.\"")
    st.say(f"\"I will!\" said {c.name}. \"I promise.\"")
    st.say(f"{r.choice(TIMES)}, there was a little box on the table. Inside was a {pet[0]}!")
    st.say(f"{c.name} named it {pet[1]}. {cap(c.he)} fed {pet[1]} every morning and played with it every afternoon.")
    st.say(f"One day, {pet[1]} {r.choice(['did not want to eat', 'looked very sleepy', 'hid in a corner'])}. {c.name} was worried.")
    st.say(f"{cap(c.he)} sat with {pet[1]} all day and kept it warm. The next morning, {pet[1]} was well again.")
    st.say(f"{c.name} kept {c.his} promise. {pet[1]} and {c.name} were the best of friends.")
    ending(st, c, [], None)


def plot_music(st, c):
    r = st.r
    inst = r.sample(["drum", "flute", "bell", "horn", "little piano", "guitar", "violin", "tambourine"], 3)
    fr = [st.new_char(exclude=[c.name]) for _ in range(2)]
    st.say(f"{c.name} loved music. {cap(c.he)} liked to play the {inst[0]}.")
    st.say(f"{r.choice(TIMES)}, {c.he} had an idea. \"Let's make a band!\"")
    st.say(f"{fr[0].name} the {fr[0].kind} played the {inst[1]}, and {fr[1].name} the {fr[1].kind} played the {inst[2]}.")
    st.say(f"At first, the music was very loud and very messy. Bang! Toot! Ding!")
    st.say(f"\"Let's listen to each other,\" said {c.name}. They played slowly, then a little faster.")
    st.say(f"Soon the music sounded {r.choice(['sweet', 'happy', 'beautiful', 'just right'])}.")
    st.say(f"All the animals came to listen. They clapped and danced {r.choice(['in the meadow', 'in the town square', 'under the old oak tree', 'by the river'])}.")
    ending(st, c, fr, r.choice([MORALS[0], None]))


PLOTS = [plot_lost, plot_new_friend, plot_fear, plot_help, plot_share, plot_trip,
         plot_bake, plot_snow, plot_birthday, plot_honest, plot_race, plot_garden,
         plot_new_thing, plot_night, plot_treasure, plot_castle, plot_rocket,
         plot_lost_forest, plot_school, plot_rainy_day, plot_pet, plot_music]



# ---- extra vocabulary: scenery, clothes, meals, errands, counting ----------

FLOWERS = ["roses", "tulips", "daisies", "lilies", "bluebells", "poppies", "violets",
           "buttercups", "sunflowers", "daffodils", "pansies", "marigolds", "snowdrops",
           "primroses", "dandelions", "orchids", "peonies", "irises", "foxgloves",
           "cornflowers", "lilacs", "carnations", "petunias", "geraniums", "zinnias",
           "asters", "forget-me-nots", "crocuses", "hyacinths", "clover flowers"]
TREES = ["oak", "pine", "willow", "birch", "maple", "apple", "cherry", "elm", "beech",
         "chestnut", "fir", "cedar", "poplar", "palm", "plum", "pear", "walnut", "spruce",
         "sycamore", "magnolia", "lemon", "olive", "orange", "peach"]
BIRDS = ["sparrows", "robins", "blackbirds", "swallows", "pigeons", "crows", "magpies",
         "finches", "wrens", "larks", "starlings", "doves", "seagulls", "herons",
         "woodpeckers", "bluebirds", "thrushes", "kingfishers", "hummingbirds", "cuckoos"]
BUGS = ["bees", "butterflies", "ladybugs", "ants", "beetles", "crickets", "grasshoppers",
        "dragonflies", "fireflies", "caterpillars", "moths", "bumblebees", "snails", "spiders"]
BUG_VERBS = ["buzzed", "danced", "floated", "zipped", "crawled", "fluttered", "hopped",
             "wandered", "hummed", "drifted"]
SOUNDS = ["singing", "chirping", "whistling", "twittering", "calling to each other",
          "cooing", "chattering", "tweeting"]
SMELLS = ["fresh bread", "warm cookies", "cut grass", "pine needles", "wet earth",
          "sweet honey", "wild roses", "hot soup", "baked apples", "salty sea air",
          "cinnamon", "lemons", "rain", "wood smoke", "ripe strawberries", "lavender",
          "chocolate cake", "oranges", "mint leaves", "new snow"]
SKIES = ["bright blue", "soft pink", "pale gray", "deep orange", "clear and blue",
         "full of fluffy clouds", "golden", "purple and gold", "dark and stormy",
         "silver and quiet", "light and sunny"]
CLOTHES = ["coat", "jacket", "sweater", "raincoat", "cap", "hat", "scarf", "dress",
           "shirt", "vest", "cape", "skirt", "hoodie", "bow tie", "ribbon", "belt",
           "apron", "cardigan", "waistcoat", "bonnet"]
CLOTHES_PL = ["boots", "sandals", "socks", "mittens", "gloves", "overalls", "pajamas",
              "slippers", "shorts", "trousers", "sneakers", "wellies"]
BREAKFAST = ["toast", "oatmeal", "pancakes", "waffles", "eggs", "cereal", "yogurt",
             "porridge", "muffins", "fruit", "bananas", "a boiled egg", "honey toast",
             "blueberry muffins", "warm rolls", "cheese and crackers"]
LUNCH = ["soup", "sandwiches", "noodles", "rice and beans", "potatoes", "salad",
         "tomato soup", "pizza", "corn", "peas and carrots", "a big stew", "dumplings",
         "pasta", "cucumber sandwiches", "baked potatoes", "vegetable pie"]
DRINKS = ["milk", "juice", "cocoa", "warm tea", "lemonade", "water", "apple juice",
          "hot chocolate", "orange juice", "strawberry milk"]
TREATS = ["ice cream", "pudding", "custard", "popcorn", "chocolate", "marshmallows",
          "raisins", "almonds", "candy", "cupcakes", "a slice of pie", "jelly",
          "gingerbread", "pretzels", "caramel apples", "a cherry tart"]
MOVES = ["walked", "skipped", "hopped", "ran", "raced", "wandered", "strolled",
         "marched", "tiptoed", "dashed", "scurried", "waddled", "trotted", "galloped",
         "bounced", "zoomed", "paddled", "hurried", "rushed", "ambled"]
ADVERBS = ["quickly", "slowly", "happily", "quietly", "softly", "gently", "carefully",
           "bravely", "proudly", "eagerly", "cheerfully", "politely", "patiently",
           "merrily", "sleepily", "excitedly", "calmly", "swiftly", "nervously", "joyfully"]
FEELINGS = ["happy", "glad", "delighted", "thrilled", "proud", "calm", "cozy",
            "grateful", "hopeful", "cheerful", "curious", "amazed", "excited", "peaceful",
            "content", "joyful", "relieved", "surprised"]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]
NUMBERS = ["two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
           "eleven", "twelve"]
# (shop, person, what they do, what they give)
ERRANDS = [
    ("bakery", "baker", "was taking hot loaves out of the oven", "a warm bun"),
    ("library", "librarian", "was putting books on the shelves", "a book about dinosaurs"),
    ("post office", "postman", "was sorting letters and parcels", "a shiny stamp"),
    ("market", "farmer", "was selling carrots, cabbages and potatoes", "a crunchy carrot"),
    ("toy shop", "shopkeeper", "was winding up a little tin soldier", "a spinning top"),
    ("fire station", "firefighter", "was washing the big red truck", "a tiny plastic helmet"),
    ("harbor", "fisherman", "was mending his nets", "a smooth blue pebble"),
    ("flower shop", "florist", "was tying flowers with ribbons", "a single yellow rose"),
    ("museum", "guide", "was showing children an old dinosaur bone", "a map of the museum"),
    ("doctor's office", "nurse", "was counting bandages", "a sticker with a star on it"),
    ("candy shop", "candy maker", "was pulling long ribbons of taffy", "a striped lollipop"),
    ("tailor's shop", "tailor", "was sewing buttons on a coat", "a scrap of velvet"),
    ("garden center", "gardener", "was planting rows of seedlings", "a packet of seeds"),
    ("train station", "conductor", "was blowing a silver whistle", "an old train ticket"),
    ("ice cream stand", "ice cream man", "was scooping vanilla and chocolate", "a small cone"),
    ("pet shop", "pet shop owner", "was feeding the goldfish", "a bag of birdseed"),
]
COUNT_THINGS = ["ducks", "apples", "stars", "clouds", "boats", "frogs", "flowers",
                "butterflies", "pebbles", "shells", "trees", "kites", "balloons",
                "snails", "sheep", "cows", "windows", "bees", "buttons", "acorns"]


def flavor(st, c):
    """One descriptive sentence about the day, the place or the character."""
    r = st.r
    k = r.randrange(9)
    if k == 0:
        return f"The sky was {r.choice(SKIES)}, and the air smelled of {r.choice(SMELLS)}."
    if k == 1:
        fl = r.sample(FLOWERS, 3)
        return f"In the {r.choice(['garden', 'meadow', 'field', 'park', 'yard'])}, there were {fl[0]}, {fl[1]} and {fl[2]}."
    if k == 2:
        return f"{cap(r.choice(BIRDS))} were {r.choice(SOUNDS)} in the {r.choice(TREES)} trees."
    if k == 3:
        return f"{cap(r.choice(BUGS))} {r.choice(BUG_VERBS)} over the {r.choice(FLOWERS)}."
    if k == 4:
        if r.random() < 0.5:
            return f"{c.name} put on {c.his} {r.choice(COLORS)} {r.choice(CLOTHES)} and {c.his} {r.choice(COLORS)} {r.choice(CLOTHES_PL)}."
        return f"{c.name} was wearing {a_an(r.choice(COLORS))} {r.choice(CLOTHES)} and {r.choice(COLORS)} {r.choice(CLOTHES_PL)}."
    if k == 5:
        return f"For breakfast, {c.name} had {r.choice(BREAKFAST)} and a cup of {r.choice(DRINKS)}."
    if k == 6:
        return f"{c.name} {r.choice(MOVES)} {r.choice(ADVERBS)} along the {r.choice(['path', 'road', 'river', 'fence', 'hedge', 'lane', 'beach', 'stream'])}."
    if k == 7:
        return f"It was {a_an(r.choice(['quiet', 'busy', 'lovely', 'chilly', 'sunny', 'breezy', 'rainy', 'warm']))} {r.choice(WEEKDAYS)} in {r.choice(MONTHS)}."
    if r.random() < 0.5:
        return f"{c.name} felt {r.choice(FEELINGS)}."
    return r.choice([
        f"Next door lived old {r.choice(['Mr.', 'Mrs.'])} {family_name(r)}, who {r.choice(['grew the biggest pumpkins', 'kept bees', 'baked pies every Sunday', 'played the fiddle', 'told wonderful stories', 'had a very loud parrot'])}.",
        f"The {family_name(r)} family lived across the road.",
        f"Every summer, {c.name} visited {c.his} cousins in {town(r)}."])


def plot_errands(st, c):
    r = st.r
    fam = r.choice(FAMILY)[0]
    st.say(f"On {r.choice(WEEKDAYS)}, {c.name} went into the town of {town(r)} with {c.his} {fam}.")
    stops = r.sample(ERRANDS, 3)
    for k, (shop, person, doing, gift) in enumerate(stops):
        first = ["First", "Next", "Then"][k]
        st.say(f"{first}, they {r.choice(MOVES)} to the {shop}. The {person} {doing}.")
        if r.random() < 0.7:
            st.say(f"The {person} smiled and gave {c.name} {gift}.")
            st.say(r.choice([f"\"Thank you!\" said {c.name} {r.choice(ADVERBS)}.",
                             f"{c.name} said thank you {r.choice(ADVERBS)}."]))
    st.say(f"For lunch, they ate {r.choice(LUNCH)} and drank {r.choice(DRINKS)}.")
    st.say(f"On the way home, {c.name} felt {r.choice(FEELINGS)}. It had been a busy day in town.")
    ending(st, c, [], None)


def plot_counting(st, c):
    r = st.r
    f = st.new_char(exclude=[c.name])
    st.say(f"{c.name} was learning to count, and {f.name} the {f.kind} wanted to help.")
    st.say(f"\"Let's count everything we see!\" said {f.name}.")
    things = r.sample(COUNT_THINGS, 4)
    nums = sorted(r.sample(range(len(NUMBERS)), 4))
    for th, n in zip(things, nums):
        st.say(r.choice([f"They saw {NUMBERS[n]} {th}.",
                         f"{c.name} counted {NUMBERS[n]} {th}.",
                         f"\"Look, {NUMBERS[n]} {th}!\" said {c.name}."]))
    st.say(f"\"You are very good at counting,\" said {f.name}. {c.name} felt {r.choice(FEELINGS)}.")
    st.say(f"At home, {c.name} counted {c.his} {r.choice(['toes', 'fingers', 'buttons', 'crayons', 'books'])} before bed.")
    ending(st, c, [f], MORALS[9])


def plot_picnic(st, c):
    r = st.r
    fr = [st.new_char(exclude=[c.name]) for _ in range(2)]
    st.say(f"{r.choice(TIMES)}, {c.name} packed a picnic basket.")
    st.say(f"{cap(c.he)} put in {r.choice(LUNCH)}, {r.choice(TREATS)} and a bottle of {r.choice(DRINKS)}.")
    st.say(f"{c.name} invited {fr[0].name} the {fr[0].kind} and {fr[1].name} the {fr[1].kind}.")
    st.say(f"They spread a {r.choice(COLORS)} blanket under {a_an(r.choice(TREES))} tree.")
    st.say(flavor(st, c))
    st.say(r.choice([
        f"Then a cheeky {r.choice(['crow', 'squirrel', 'magpie', 'seagull', 'ant'])} took some {r.choice(TREATS)} and ran away! They all laughed.",
        f"Then some {r.choice(['ants', 'bees', 'ladybugs'])} came to visit, so they shared a few crumbs with them.",
        f"Then it started to rain, so they ate the rest of the picnic under a big umbrella."]))
    st.say(f"After lunch, they played {r.choice(GAMES)} until the sun went down.")
    ending(st, c, fr, MORALS[1])


PLOTS += [plot_errands, plot_counting, plot_picnic]


def make_story(seed, i):
    """Story i of the set with this seed; deterministic (str seeds use SHA-512)."""
    r = random.Random(f"{seed}-{i}")
    st = Story(r)
    c = st.new_char()
    opening(st, c)
    for _ in range(r.choice([0, 1, 1, 2])):
        st.say(flavor(st, c))
    r.choice(PLOTS)(st, c)
    return st.text()


def make_stories(seed, start, count):
    return [make_story(seed, i) for i in range(start, start + count)]


def make_corpus(seed, target_bytes, workers=1, chunk=2000):
    """Stories of set `seed` in order until their UTF-8 size reaches target_bytes
    (the same stories whatever `workers` is)."""
    out, size, start = [], 0, 0
    if workers > 1:
        import multiprocessing
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            while size < target_bytes:
                jobs = [(seed, start + k * chunk, chunk) for k in range(workers)]
                for part in pool.starmap(make_stories, jobs):
                    for s in part:
                        if size >= target_bytes:
                            break
                        out.append(s)
                        size += len(s.encode()) + 1
                start += workers * chunk
    else:
        while size < target_bytes:
            s = make_story(seed, start)
            start += 1
            out.append(s)
            size += len(s.encode()) + 1
    return out


# --------------------------------------------------------------------------
# 2. Tokenizer: Llama-2-style BPE with byte fallback, trained with `tokenizers`
# --------------------------------------------------------------------------

SPECIALS = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)]
BOS_ID, EOS_ID, UNK_ID = 1, 2, 0


def train_tokenizer(stories, vocab_size):
    """Returns a tokenizers.Tokenizer laid out like Llama 2's tokenizer.json
    (as transformers' LlamaTokenizer builds it): BPE with byte_fallback and
    fuse_unk, ids 0..2 = <unk> <s> </s>, ids 3..258 = <0x00>..<0xFF>, no
    normalizer, Metaspace pre-tokenizer (replacement "▁", prepend_scheme
    "first", split false), decoder Replace(▁→' '), ByteFallback, Fuse,
    Strip(left 1), TemplateProcessing post-processor adding <s>."""
    from tokenizers import Tokenizer, AddedToken, decoders, models, pre_tokenizers, processors, trainers

    # Training splits at spaces (split=True) and isolates punctuation, so no
    # merge crosses a word boundary or joins a letter to a punctuation mark:
    # every token holds "▁" only as its first character and punctuation only
    # alone (as SentencePiece's Llama vocabulary mostly does; otherwise
    # "▁time," becomes one token and a prompt ending in "time" is off the
    # training distribution).  Encoding with the Llama layout (Metaspace,
    # split=False, no punctuation split; used below) then gives the same
    # ids.  check_tokenizer() verifies this.
    t = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    t.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True),
        pre_tokenizers.Punctuation(behavior="isolated")])
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                  show_progress=False)
    t.train_from_iterator(stories, trainer=trainer, length=len(stories))
    j = json.loads(t.to_str())
    vocab = j["model"]["vocab"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ", 1)) for m in j["model"]["merges"]]
    for i, sp in enumerate(SPECIALS):
        assert vocab[sp] == i, (sp, vocab.get(sp), i)
    for tok_s in vocab:
        assert "▁" not in tok_s[1:], f"token with inner ▁: {tok_s!r}"

    final = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>",
                                 fuse_unk=True, byte_fallback=True))
    final.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    final.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(),
                                       decoders.Fuse(), decoders.Strip(content=" ", left=1, right=0)])
    final.add_special_tokens([AddedToken(x, special=True, normalized=False) for x in SPECIALS[:3]])
    final.post_processor = processors.TemplateProcessing(
        single="<s>:0 $A:0", pair="<s>:0 $A:0 <s>:1 $B:1", special_tokens=[("<s>", BOS_ID)])
    return final, t


def write_tokenizer_files(final, d):
    final.save(os.path.join(d, "tokenizer.json"))
    tok = lambda s: {"content": s, "lstrip": False, "normalized": False, "rstrip": False,
                     "single_word": False, "special": True}
    cfg = {
        "add_bos_token": True,
        "add_eos_token": False,
        "add_prefix_space": None,
        "added_tokens_decoder": {str(i): tok(s) for i, s in enumerate(SPECIALS[:3])},
        "bos_token": "<s>",
        "clean_up_tokenization_spaces": False,
        "eos_token": "</s>",
        "extra_special_tokens": {},
        "legacy": False,
        "model_max_length": MAX_POS,
        "pad_token": None,
        "padding_side": "left",
        "sp_model_kwargs": {},
        "tokenizer_class": "LlamaTokenizer",
        "unk_token": "<unk>",
        "use_default_system_prompt": False,
    }
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f, indent=2, ensure_ascii=False)
        f.write("\n")
    with open(os.path.join(d, "special_tokens_map.json"), "w") as f:
        json.dump({"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}, f, indent=2)
        f.write("\n")


TOKENIZER_PROBES = [
    "Once upon a time",
    "The little dog",
    "Once upon a time, there was a little rabbit named Pip who lived near the old mill.",
    "\"Can you help me?\" asked Lily.",
    "Hello world",
    " leading space",
    "two  spaces   and three",
    "trailing space ",
    "Line one\nLine two\n\nend",
    "tab\there",
    "naïve café, Zürich ñ",
    "emoji 🙂 and 日本語",
    "numbers 12345 and 3.14",
    "UPPER lower MiXeD",
    "<s> looks special </s>",
    "▁already▁has▁meta",
    "",
]


def check_tokenizer(d, raw_split, stories, log):
    """AutoTokenizer must load d as a Llama tokenizer, add <s>, and give the
    same ids as the raw tokenizer.json (and as the split=True trainer pipe)."""
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer
    at = AutoTokenizer.from_pretrained(d)
    raw = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
    log(f"AutoTokenizer class: {type(at).__name__}  vocab {len(at)}  raw vocab {raw.get_vocab_size()}")
    if "Llama" not in type(at).__name__:
        log(f"WARNING: AutoTokenizer gave {type(at).__name__}, not a Llama tokenizer")
    ids = at("Once upon a time")["input_ids"]
    assert ids[0] == BOS_ID and ids[-1] != EOS_ID, ids
    assert at.bos_token_id == BOS_ID and at.eos_token_id == EOS_ID and at.unk_token_id == UNK_ID
    # compare the pipeline transformers built with ours
    try:
        mine = json.loads(raw.to_str())
        theirs = json.loads(at.backend_tokenizer.to_str())
        for k in ["normalizer", "pre_tokenizer", "post_processor", "decoder"]:
            if mine.get(k) != theirs.get(k):
                log(f"NOTE: AutoTokenizer's {k} differs from tokenizer.json: {json.dumps(theirs.get(k))[:300]}")
        for k in ["byte_fallback", "fuse_unk", "unk_token", "dropout", "continuing_subword_prefix"]:
            if mine["model"].get(k) != theirs["model"].get(k):
                log(f"NOTE: AutoTokenizer's model.{k} = {theirs['model'].get(k)} vs {mine['model'].get(k)}")
        if mine["model"]["vocab"] != theirs["model"]["vocab"] or mine["model"]["merges"] != theirs["model"]["merges"]:
            log("NOTE: AutoTokenizer's vocab/merges differ from tokenizer.json")
    except Exception as e:  # diagnostics only
        log(f"NOTE: could not compare pipelines: {e!r}")
    probes = []
    bad = 0
    for text in TOKENIZER_PROBES + stories[:20]:
        a = at(text)["input_ids"]
        b = raw.encode(text).ids
        c = [BOS_ID] + raw_split.encode(text, add_special_tokens=False).ids
        if a != b or (a != c and "<s>" not in text):
            bad += 1
            log(f"TOKENIZER MISMATCH {text!r}: auto {a[:20]} raw {b[:20]} split {c[:20]}")
        dec = at.decode(a[1:])
        if text in TOKENIZER_PROBES:
            probes.append({"text": text, "ids": a, "tokens": at.convert_ids_to_tokens(a),
                           "decoded": dec, "raw_decoded": raw.decode(b[1:], skip_special_tokens=False)})
    for s in stories[:50]:
        if at.decode(at(s)["input_ids"], skip_special_tokens=True) != s:
            bad += 1
            log(f"DECODE MISMATCH {s[:60]!r}")
    if bad:
        log(f"WARNING: {bad} tokenizer mismatches")
    return at, {"class": type(at).__name__, "mismatches": bad, "probes": probes}


# --------------------------------------------------------------------------
# 3. Model, training
# --------------------------------------------------------------------------

def make_config(vocab_size, layers=6, hidden=256, inter=704, heads=8, kv_heads=4):
    from transformers import LlamaConfig
    return LlamaConfig(
        vocab_size=vocab_size, hidden_size=hidden, intermediate_size=inter,
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
        head_dim=hidden // heads, max_position_embeddings=MAX_POS, rope_theta=10000.0,
        rms_norm_eps=1e-5, hidden_act="silu", tie_word_embeddings=False,
        attention_bias=False, mlp_bias=False, initializer_range=0.02,
        bos_token_id=BOS_ID, eos_token_id=EOS_ID, pad_token_id=None)


def token_stream(tok, stories, chunk=50000):
    """[<s>] story [</s>] for every story, concatenated (the training layout)."""
    import numpy as np
    parts = []
    for k in range(0, len(stories), chunk):
        encs = tok.encode_batch(stories[k:k + chunk], add_special_tokens=False)
        parts.extend(np.asarray([BOS_ID] + e.ids + [EOS_ID], dtype=np.int16) for e in encs)
    return np.concatenate(parts).astype(np.int32)


def save_model(model, d, log):
    """f16 safetensors via save_pretrained; config.json gets torch_dtype
    float16 and a top-level rope_theta whatever transformers' version writes."""
    import torch
    from transformers import GenerationConfig
    m16 = model.to(torch.float16)
    m16.generation_config = GenerationConfig(bos_token_id=BOS_ID, eos_token_id=EOS_ID)
    m16.save_pretrained(d)
    p = os.path.join(d, "config.json")
    with open(p) as f:
        cfg = json.load(f)
    cfg.setdefault("torch_dtype", "float16")
    if "dtype" in cfg:
        cfg["dtype"] = "float16"
    cfg["torch_dtype"] = "float16"
    rp = cfg.get("rope_parameters") or {}
    cfg.setdefault("rope_theta", rp.get("rope_theta", 10000.0))
    with open(p, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")
    files = sorted(os.listdir(d))
    log(f"saved {d}: {files}")
    assert os.path.exists(os.path.join(d, "model.safetensors")), files
    return m16


def train(model, data, *, steps_budget_s, hard_deadline, batch, seq, lr, warmup, log,
          eval_fn=None, ckpt_fn=None, log_every=50, eval_every_s=45.0, ckpt_every_s=90.0,
          seed=0, tsv=None):
    """AdamW, linear warm-up then cosine to lr/10, bf16 autocast.  The number
    of steps is fixed after timing the first steps so that the schedule ends
    inside steps_budget_s."""
    import torch
    import torch.nn.functional as F
    dev = "cuda"
    model.train()
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=lr, betas=(0.9, 0.95), eps=1e-8, fused=True)
    g = torch.Generator(device=dev)
    g.manual_seed(seed)
    n = data.numel()
    ar = torch.arange(seq + 1, device=dev)
    V = model.config.vocab_size
    t0 = time.time()
    total_steps = None
    step = 0
    loss_acc = torch.zeros((), device=dev)
    acc_n = 0
    last_eval = last_ckpt = t_mark = t0
    rows = []

    def lr_at(s):
        if s < warmup:
            return lr * (s + 1) / warmup
        T = total_steps or 10 ** 9
        prog = min(1.0, (s - warmup) / max(1, T - warmup))
        return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * prog)))

    while True:
        now = time.time()
        if total_steps is None and step == 60:
            torch.cuda.synchronize()
            now = time.time()
            per = (now - t_mark) / 40
            total_steps = max(warmup + 10, int(steps_budget_s / per * 0.97))
            log(f"timing: {per * 1000:.1f} ms/step -> {total_steps} steps "
                f"({total_steps * batch * seq / 1e6:.0f}M tokens)")
        if step == 20:
            torch.cuda.synchronize()
            t_mark = time.time()
        if (total_steps is not None and step >= total_steps) or now > hard_deadline:
            if now > hard_deadline:
                log(f"hard deadline hit at step {step}")
            break
        for gr in opt.param_groups:
            gr["lr"] = lr_at(step)
        starts = torch.randint(0, n - seq - 1, (batch,), device=dev, generator=g)
        idx = starts[:, None] + ar
        chunk = data[idx]
        x, y = chunk[:, :-1], chunk[:, 1:]
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(input_ids=x, use_cache=False).logits
        loss = F.cross_entropy(logits.float().reshape(-1, V), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        loss_acc += loss.detach()
        acc_n += 1
        step += 1
        if step % log_every == 0 or step == 1:
            l = (loss_acc / acc_n).item()
            loss_acc.zero_()
            acc_n = 0
            el = time.time() - t0
            row = {"step": step, "tokens": step * batch * seq, "train_loss": round(l, 4),
                   "lr": lr_at(step - 1), "grad_norm": round(float(gn), 3),
                   "elapsed_s": round(el, 1), "heldout_loss": ""}
            if eval_fn is not None and (time.time() - last_eval > eval_every_s):
                row["heldout_loss"] = round(eval_fn(model), 4)
                model.train()
                last_eval = time.time()
            rows.append(row)
            log("step {step:6d}  tok {tokens:>11,d}  loss {train_loss:.4f}  lr {lr:.2e}  "
                "gn {grad_norm:.2f}  t {elapsed_s:6.1f}s  heldout {heldout_loss}".format(**row))
            if tsv:
                with open(tsv, "a") as f:
                    f.write("\t".join(str(row[k]) for k in TSV_COLS) + "\n")
        if ckpt_fn is not None and time.time() - last_ckpt > ckpt_every_s:
            ckpt_fn(model, step)
            last_ckpt = time.time()
    torch.cuda.synchronize()
    return {"steps": step, "planned_steps": total_steps, "tokens": step * batch * seq,
            "seconds": round(time.time() - t0, 1), "rows": rows}


TSV_COLS = ["step", "tokens", "train_loss", "heldout_loss", "lr", "grad_norm", "elapsed_s"]


def heldout_loss_gpu(model, stream, seq=MAX_POS):
    """Quick held-out loss during training (bf16, non-overlapping windows)."""
    import torch
    import torch.nn.functional as F
    model.eval()
    n = (stream.numel() - 1) // seq
    x = stream[: n * seq].view(n, seq)
    y = stream[1: n * seq + 1].view(n, seq)
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        logits = model(input_ids=x, use_cache=False).logits
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1)).item()


# --------------------------------------------------------------------------
# 4. Fixtures from the saved model (f16 on disk -> f32, eager attention, CPU)
# --------------------------------------------------------------------------

def load_saved(d):
    import torch
    from transformers import LlamaForCausalLM
    try:
        m = LlamaForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager")
    except TypeError:
        m = LlamaForCausalLM.from_pretrained(d, torch_dtype=torch.float32, attn_implementation="eager")
    m.eval()
    return m


def make_fixtures(d, heldout_stories, log, greedy_n=48, versions=None, sample_tokens=200):
    import torch
    from safetensors import safe_open
    from transformers import AutoTokenizer
    torch.set_num_threads(min(16, os.cpu_count() or 1))
    torch.set_float32_matmul_precision("highest")
    tok = AutoTokenizer.from_pretrained(d)
    model = load_saved(d)
    p0 = next(model.parameters())
    assert p0.dtype == torch.float32, p0.dtype
    # the weights are exactly the f16 file's values
    with safe_open(os.path.join(d, "model.safetensors"), "pt") as f:
        for name in list(f.keys())[:3] + ["lm_head.weight"]:
            w16 = f.get_tensor(name)
            assert w16.dtype == torch.float16, (name, w16.dtype)
            if not torch.equal(model.state_dict()[name], w16.float()):
                log(f"WARNING: reloaded {name} differs from the f16 file")
        st_names = sorted(f.keys())
        st_meta = f.metadata()
    attn = getattr(model.config, "_attn_implementation", None)
    rope = getattr(model.config, "rope_parameters", None) or getattr(model.config, "rope_theta", None)
    log(f"fixture model: attn={attn} dtype={p0.dtype} tensors={len(st_names)} rope={rope}")
    if attn != "eager":
        log(f"WARNING: attention implementation is {attn}")

    @torch.no_grad()
    def logits_of(ids):
        return model(input_ids=torch.tensor([ids]), use_cache=False).logits[0].float()

    out = {"format": 1, "model_dir": "models/demo",
           "eval": {"weights": "model.safetensors (float16) upcast to float32",
                    "compute": "float32 on CPU, attn_implementation=eager, no KV cache "
                               "(every step recomputes the whole sequence)",
                    "attn_implementation": attn},
           "versions": versions or {}, "tensor_names": st_names, "safetensors_metadata": st_meta}

    prompts = []
    for text in ["Once upon a time", "The little dog"]:
        ids = tok(text)["input_ids"]
        seq = list(ids)
        gen, margins, top1 = [], [], []
        for _ in range(greedy_n):
            lg = logits_of(seq)[-1]
            v, i = torch.topk(lg, 2)
            gen.append(int(i[0]))
            margins.append(round(float(v[0] - v[1]), 5))
            top1.append(round(float(v[0]), 5))
            seq.append(int(i[0]))
        prompts.append({"text": text, "prompt_ids": ids, "greedy_ids": gen,
                        "greedy_text": tok.decode(gen),
                        "full_text": tok.decode(seq, skip_special_tokens=True),
                        "top2_margin": margins, "top1_logit": top1,
                        "min_margin": min(margins)})
        log(f"greedy [{text}] -> {tok.decode(seq, skip_special_tokens=True)!r}  (min margin {min(margins):.3f})")
    out["greedy"] = prompts
    lg0 = logits_of(prompts[0]["prompt_ids"])
    out["prompt0_logits_last"] = [round(float(x), 4) for x in lg0[-1]]
    out["prompt0_logits_all_positions_argmax"] = [int(x) for x in lg0.argmax(-1)]

    # held-out: one story per line of heldout.txt, each tokenized on its own
    # with <s> (AutoTokenizer), NLL of tokens 2..N given the ones before
    per_n, per_sum = [], []
    short = None
    for k, s in enumerate(heldout_stories):
        ids = tok(s)["input_ids"]
        assert len(ids) <= MAX_POS, len(ids)
        lp = torch.log_softmax(logits_of(ids), -1)
        nll = -lp[:-1].gather(1, torch.tensor(ids[1:])[:, None])[:, 0]
        per_n.append(len(ids) - 1)
        per_sum.append(float(nll.double().sum()))
        if k == 0:
            short = {"text": s, "ids": ids, "nll_per_token": [round(float(x), 5) for x in nll],
                     "mean_nll": float(nll.double().mean())}
    mean = sum(per_sum) / sum(per_n)
    out["heldout"] = {
        "file": "models/demo/heldout.txt",
        "scheme": "each line of heldout.txt is one story; tokenize it alone with AutoTokenizer "
                  "(<s> prepended, no </s>), run it from position 0, and sum -log softmax(logits[t])[ids[t+1]] "
                  "for t = 0..N-2 (natural log); mean_nll = total sum / total count over all lines",
        "n_stories": len(per_n), "n_predicted": sum(per_n), "tokens_per_story_predicted": per_n,
        "nll_sum_per_story": [round(x, 5) for x in per_sum], "mean_nll": mean, "ppl": math.exp(mean)}
    out["heldout_first_story"] = short
    log(f"held-out: {len(per_n)} stories, {sum(per_n)} predicted tokens, mean NLL {mean:.4f}, ppl {math.exp(mean):.3f}")

    # one full 512-token window in the training layout
    stream = []
    for s in heldout_stories:
        stream += tok(s)["input_ids"] + [EOS_ID]
        if len(stream) >= MAX_POS:
            break
    win = stream[:MAX_POS]
    lp = torch.log_softmax(logits_of(win), -1)
    nll = -lp[:-1].gather(1, torch.tensor(win[1:])[:, None])[:, 0]
    out["window512"] = {
        "scheme": "the held-out lines in order, each as AutoTokenizer ids (<s> first) followed by </s> (id 2), "
                  "concatenated and cut to the first 512 ids (these ids are given); one forward pass from position 0; "
                  "mean of -log softmax(logits[t])[ids[t+1]] for t = 0..510",
        "ids": win, "mean_nll": float(nll.double().mean()), "ppl": math.exp(float(nll.double().mean())),
        "nll_first_16": [round(float(x), 5) for x in nll[:16]],
        "nll_last_16": [round(float(x), 5) for x in nll[-16:]]}
    log(f"window512: mean NLL {out['window512']['mean_nll']:.4f}")

    # samples for the README (temperature 0.8, torch RNG; not bit-reproducible elsewhere)
    samples = []
    gen = torch.Generator().manual_seed(1)
    for text in ["Once upon a time", "The little dog", "Once upon a time"]:
        seq = tok(text)["input_ids"]
        for _ in range(sample_tokens):
            lg = logits_of(seq)[-1] / 0.8
            nxt = int(torch.multinomial(torch.softmax(lg, -1), 1, generator=gen))
            if nxt == EOS_ID:
                break
            seq.append(nxt)
        samples.append({"prompt": text, "temperature": 0.8, "text": tok.decode(seq, skip_special_tokens=True)})
        log(f"sample: {samples[-1]['text']!r}")
    out["samples_t0.8"] = samples
    return out


# --------------------------------------------------------------------------
# 5. Main
# --------------------------------------------------------------------------

def versions_info():
    import platform
    import torch
    import transformers
    import tokenizers
    import safetensors
    v = {"python": platform.python_version(), "torch": torch.__version__,
         "transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
         "safetensors": safetensors.__version__}
    if torch.cuda.is_available():
        v["gpu"] = torch.cuda.get_device_name(0)
        v["cuda"] = torch.version.cuda
    return v


def make_corpus_prefix(stories, max_bytes):
    """The leading stories whose UTF-8 size (with a newline each) stays within max_bytes."""
    size = 0
    for k, st in enumerate(stories):
        size += len(st.encode()) + 1
        if size > max_bytes:
            return stories[:k]
    return stories


def heldout_set(max_bytes):
    """Held-out stories (seed HELDOUT_SEED), one per line, at most max_bytes."""
    out, size, i = [], 0, 0
    while True:
        s = make_story(HELDOUT_SEED, i)
        if size + len(s.encode()) + 1 > max_bytes:
            return out
        out.append(s)
        size += len(s.encode()) + 1
        i += 1


def run(args, small, log):
    import numpy as np
    import torch
    T0 = time.time()
    stage = args.stage if not small else "/tmp/demo_selfcheck"
    if small:
        import shutil
        shutil.rmtree(stage, ignore_errors=True)
    mdir = os.path.join(stage, "models", "demo")
    fdir = os.path.join(stage, "tests", "fixtures", "demo")
    os.makedirs(mdir, exist_ok=True)
    os.makedirs(fdir, exist_ok=True)
    vers = versions_info()

    # text
    target = (2 << 20) if small else args.train_mb << 20
    workers = min(16, os.cpu_count() or 1) if getattr(args, "parallel_ok", True) else 1
    try:
        stories = make_corpus(TRAIN_SEED, target, workers=workers, chunk=500 if small else 2000)
    except Exception as e:
        log(f"parallel text generation failed ({e!r}); generating in one process")
        args.parallel_ok = False
        stories = make_corpus(TRAIN_SEED, target)
    if small and stories != make_corpus(TRAIN_SEED, target):
        log("WARNING: parallel text generation differs from serial; using serial")
        args.parallel_ok = False
        stories = make_corpus(TRAIN_SEED, target)
    tok_stories = make_corpus_prefix(stories, 40 << 20)  # the tokenizer sees the first 40 MB
    held = heldout_set(8 << 10 if small else 64 << 10)
    with open(os.path.join(mdir, "heldout.txt"), "w") as f:
        f.write("\n".join(held) + "\n")
    n_bytes = sum(len(s.encode()) + 1 for s in stories)
    log(f"text: {len(stories)} train stories, {n_bytes / 1e6:.1f} MB; {len(held)} held-out stories "
        f"({os.path.getsize(os.path.join(mdir, 'heldout.txt'))} bytes)  [{time.time() - T0:.1f}s]")
    train_set = set(stories)
    overlap = sum(1 for s in held if s in train_set)
    log(f"held-out stories also in the train set: {overlap}/{len(held)}")

    # tokenizer
    tk, tk_split = train_tokenizer(tok_stories, VOCAB_SIZE)
    write_tokenizer_files(tk, mdir)
    V = tk.get_vocab_size()
    log(f"tokenizer: vocab {V}  [{time.time() - T0:.1f}s]")
    at, probes = check_tokenizer(mdir, tk_split, held, log)
    if V != VOCAB_SIZE:
        log(f"WARNING: tokenizer vocab {V} != {VOCAB_SIZE}; the model uses {V}")
    data = token_stream(tk, stories)
    hstream = token_stream(tk, held)
    log(f"tokens: train {len(data):,} ({n_bytes / len(data):.2f} bytes/token), held-out {len(hstream):,}  "
        f"[{time.time() - T0:.1f}s]")

    # model
    torch.manual_seed(0)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    from transformers import LlamaForCausalLM
    cfg = make_config(V, layers=2) if small else make_config(V)
    model = LlamaForCausalLM(cfg).cuda()
    n_params = sum(p.numel() for p in model.parameters())
    log(f"model: {n_params:,} parameters; attn {getattr(model.config, '_attn_implementation', None)}")
    d_gpu = torch.from_numpy(data.astype(np.int64)).cuda()
    h_gpu = torch.from_numpy(hstream.astype(np.int64)).cuda()
    tsv = os.path.join(mdir, "train_log.tsv")
    with open(tsv, "w") as f:
        f.write("\t".join(TSV_COLS) + "\n")

    def ckpt(m, step):
        if small or not args.out:
            return
        from safetensors.torch import save_file
        sd = {k: v.detach().to(torch.float16).contiguous() for k, v in m.state_dict().items()}
        save_file(sd, os.path.join(args.out, "ckpt.safetensors"), metadata={"step": str(step)})
        log(f"checkpoint at step {step}")

    budget = 8.0 if small else args.train_seconds
    hard = time.time() + budget + 25 if small else min(time.time() + budget + 20, args.t_start + args.deadline)
    res = train(model, d_gpu, steps_budget_s=budget, hard_deadline=hard,
                batch=8 if small else args.batch, seq=MAX_POS, lr=args.lr,
                warmup=10 if small else args.warmup, log=log,
                eval_fn=lambda m: heldout_loss_gpu(m, h_gpu), ckpt_fn=ckpt,
                log_every=10 if small else 50, eval_every_s=3 if small else 40,
                tsv=tsv)
    final_held = heldout_loss_gpu(model, h_gpu)
    log(f"trained {res['steps']} steps, {res['tokens']:,} tokens in {res['seconds']}s; "
        f"held-out loss (bf16, windows) {final_held:.4f}  [{time.time() - T0:.1f}s]")
    with open(tsv, "a") as f:
        last = res["rows"][-1] if res["rows"] else {}
        f.write("\t".join(str(x) for x in [res["steps"], res["tokens"], last.get("train_loss", ""),
                                           round(final_held, 4), "", "", res["seconds"]]) + "\n")
    model = save_model(model, mdir, log)
    del d_gpu
    fx = make_fixtures(mdir, held, log, greedy_n=8 if small else 48, versions=vers,
                       sample_tokens=20 if small else 200)
    fx["tokenizer"] = probes
    script = os.path.abspath(__file__)
    sha = hashlib.sha256(open(script, "rb").read()).hexdigest()
    info = {
        "script": "tools/train_demo_model.py", "script_sha256": sha, "versions": vers,
        "train_text": {"seed": TRAIN_SEED, "stories": len(stories), "bytes": n_bytes,
                       "tokens": int(len(data)), "tokenizer_trained_on_stories": len(tok_stories)},
        "heldout_text": {"seed": HELDOUT_SEED, "stories": len(held), "overlap_with_train": overlap},
        "tokenizer": {"vocab_size": V},
        "model": {"parameters": n_params, "config": json.loads(cfg.to_json_string())},
        "training": {k: v for k, v in res.items() if k != "rows"} | {
            "batch": 8 if small else args.batch, "seq_len": MAX_POS, "lr": args.lr,
            "warmup": args.warmup, "schedule": "linear warm-up, cosine to lr/10",
            "optimizer": "AdamW(0.9, 0.95, eps 1e-8, wd 0.1 on matrices), grad clip 1.0",
            "precision": "bf16 autocast, f32 master weights, sdpa attention, no torch.compile",
            "final_train_loss": res["rows"][-1]["train_loss"] if res["rows"] else None,
            "final_heldout_loss_bf16_windows": final_held},
        "heldout_fixture": {"mean_nll": fx["heldout"]["mean_nll"], "ppl": fx["heldout"]["ppl"]},
        "wall_seconds_total": round(time.time() - T0, 1),
    }
    fx["train_info"] = {"script_sha256": sha, "steps": res["steps"], "tokens": res["tokens"]}
    with open(os.path.join(mdir, "train_info.json"), "w") as f:
        json.dump(info, f, indent=2, default=str)
        f.write("\n")
    with open(os.path.join(fdir, "golden.json"), "w") as f:
        # one top-level key a line, values compact
        f.write("{\n" + ",\n".join(json.dumps(k) + ": " + json.dumps(v, ensure_ascii=False)
                                    for k, v in fx.items()) + "\n}\n")
    log(f"{'self-check' if small else 'full run'} done in {time.time() - T0:.1f}s")
    return info


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", default="stage", help="output root (models/demo and tests/fixtures/demo inside)")
    ap.add_argument("--out", default=os.environ.get("OUT"), help="where periodic checkpoints and demo.tar go")
    ap.add_argument("--train-seconds", type=float, default=330.0)
    ap.add_argument("--deadline", type=float, default=510.0,
                    help="training stops at the latest this many seconds after the script started")
    ap.add_argument("--train-mb", type=int, default=320)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--no-selfcheck", action="store_true")
    ap.add_argument("--print-stories", type=int, default=0)
    ap.add_argument("--seed", type=int, default=TRAIN_SEED)
    args = ap.parse_args()
    args.t_start = time.time()
    if args.print_stories:
        for i in range(args.print_stories):
            print(make_story(args.seed, i))
            print()
        return

    def log(msg):
        print(f"[{time.time() - args.t_start:7.1f}s] {msg}", flush=True)

    log("versions: " + json.dumps(versions_info()))
    if not args.no_selfcheck:
        run(args, True, log)
    run(args, False, log)
    if args.out:
        import tarfile
        tp = os.path.join(args.out, "demo.tar")
        with tarfile.open(tp, "w") as tf:
            for sub in ["models/demo", "tests/fixtures/demo"]:
                tf.add(os.path.join(args.stage, sub), arcname=sub)
        log(f"wrote {tp} ({os.path.getsize(tp)} bytes)")
        ck = os.path.join(args.out, "ckpt.safetensors")
        if os.path.exists(ck):
            os.remove(ck)


if __name__ == "__main__":
    main()
