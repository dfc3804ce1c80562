"""Telepathy: guess a hidden entity by asking yes/no questions (spec section 8).

The offline user answers Yes / No / Maybe from the entity's attributes in the project's knowledge base; a
guess (choice "answer") earns 1 and ends the episode when it names the entity (exact, synonym, or semantic
match).
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any, Literal

from infopo.envs.actions import Action, format_help, parse_action
from infopo.envs.base import ENVIRONMENTS, Environment, StepResult, Task
from infopo.envs.data import read_records
from infopo.envs.llm import (
    JUDGE_PROMPT,
    USER_SIMULATOR_PROMPT,
    LLMClient,
    LLMConfig,
    SimulatorUnavailable,
    failed_step,
    simulator_client,
)
from infopo.envs.semantic import SemanticMatcher, tokens

CHOICES = ("action", "answer")
QUESTION_THRESHOLDS = {"embedding": 0.7, "lexical": 0.6}
GUESS_THRESHOLDS = {"embedding": 0.9, "lexical": 0.99}

SYSTEM_PROMPT = (
    "You are playing a guessing game. The user is thinking of an entity. Ask yes/no questions (choice "
    '"action") to narrow it down, then name it (choice "answer"). You may guess more than once, but the '
    "number of turns is limited.\n\n" + format_help(CHOICES)
)

# Attribute -> yes/no questions that ask about it.
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "living": ("Is it a living thing?", "Is it alive?", "Is it a living organism?"),
    "animal": ("Is it an animal?", "Is it a creature?"),
    "mammal": ("Is it a mammal?",),
    "bird": ("Is it a bird?",),
    "aquatic": ("Does it live in water?", "Is it found in the sea or ocean?", "Does it swim?"),
    "insect": ("Is it an insect or a bug?",),
    "reptile": ("Is it a reptile?",),
    "domestic": ("Is it a pet?", "Is it a domesticated animal?", "Is it kept on farms?"),
    "plant": ("Is it a plant?",),
    "person": ("Is it a person?", "Is it a human being?", "Is it someone famous?"),
    "female": ("Is it a woman?", "Is the person female?"),
    "scientist": ("Is it a scientist?", "Is the person known for science or inventions?"),
    "artist": ("Is it an artist, writer or musician?", "Is the person known for art, music or books?"),
    "leader": ("Is it a political leader?", "Was the person a ruler or head of state?"),
    "athlete": ("Is it an athlete?", "Is the person known for sport?"),
    "historical": ("Did it live or exist before 1900?", "Is it from history?", "Is the person dead?"),
    "fictional": ("Is it fictional?", "Is it imaginary or from a story?", "Is it a fictional character?"),
    "food": ("Is it food?", "Can you eat it?", "Is it edible?"),
    "fruit": ("Is it a fruit?",),
    "vegetable": ("Is it a vegetable?",),
    "sweet": ("Does it taste sweet?", "Is it sweet?", "Is it a dessert?"),
    "drink": ("Is it a drink?", "Is it a beverage?", "Can you drink it?"),
    "place": ("Is it a place?", "Is it a location you can visit?"),
    "country": ("Is it a country?", "Is it a nation?"),
    "city": ("Is it a city?", "Is it a town?"),
    "landmark": ("Is it a landmark?", "Is it a famous building or monument?"),
    "europe": ("Is it in Europe?", "Is it European?"),
    "asia": ("Is it in Asia?", "Is it Asian?"),
    "africa": ("Is it in Africa?", "Is it African?"),
    "americas": ("Is it in the Americas?", "Is it in North or South America?", "Is it American?"),
    "man_made": ("Is it man-made?", "Was it made by people?", "Is it an artificial object?"),
    "object": ("Is it an object?", "Is it a physical thing you can touch?"),
    "handheld": ("Can you hold it in your hand?", "Is it small enough to carry?"),
    "electronic": ("Is it electronic?", "Does it use electricity?", "Does it need batteries or power?"),
    "vehicle": ("Is it a vehicle?", "Is it used for transport?", "Can you ride in it?"),
    "wheels": ("Does it have wheels?",),
    "flies": ("Can it fly?", "Does it fly?"),
    "instrument": ("Is it a musical instrument?", "Is it used to make music?"),
    "sport": ("Is it a sport?", "Is it a game people play?"),
    "ball": ("Is it played with a ball?",),
    "team": ("Is it a team sport?", "Is it played in teams?"),
    "kitchen": ("Is it used in the kitchen?", "Is it used for cooking?"),
    "big": ("Is it bigger than a person?", "Is it large?"),
}

# The knowledge base: group -> (attributes shared by the group, "name/synonym:extra attrs" entries).
_KB: dict[str, tuple[str, str]] = {
    "mammal": (
        "living animal mammal",
        "dog/puppy:domestic; cat/kitten:domestic handheld; horse/pony:domestic big; cow/cattle:domestic big; "
        "pig/hog:domestic; sheep/lamb:domestic; goat:domestic; rabbit/bunny:domestic handheld; "
        "hamster:domestic handheld; lion:africa big; tiger:asia big; elephant:big africa asia; "
        "giraffe:africa big; zebra:africa big; hippopotamus/hippo:africa big aquatic; kangaroo; koala; "
        "panda/giant panda:asia; polar bear:big; brown bear/grizzly bear:big americas europe; "
        "wolf:europe americas; "
        "fox; deer; camel:big africa asia domestic; gorilla:africa big; chimpanzee/chimp:africa; "
        "squirrel:handheld; mouse:handheld; bat:flies; whale/blue whale:aquatic big; dolphin:aquatic big; "
        "seal:aquatic; otter:aquatic; hedgehog:handheld; cheetah:africa; rhinoceros/rhino:africa big",
    ),
    "bird": (
        "living animal bird flies",
        "eagle; owl; parrot:domestic; penguin:aquatic; flamingo; peacock; hummingbird:handheld; "
        "chicken/hen:domestic; duck:aquatic domestic; swan:aquatic; crow/raven; pigeon/dove; "
        "ostrich:africa big; seagull/gull:aquatic; woodpecker",
    ),
    "water animal": (
        "living animal aquatic",
        "shark:big; octopus; jellyfish; goldfish:domestic handheld; salmon; starfish/sea star:handheld; "
        "crab; lobster; seahorse:handheld; clownfish:handheld; tuna:big; frog:handheld",
    ),
    "small creature": (
        "living animal",
        "bee/honeybee:insect flies handheld; butterfly:insect flies handheld; ant:insect handheld; "
        "mosquito:insect flies handheld; ladybug/ladybird:insect flies handheld; spider:handheld; "
        "snail:handheld; crocodile/alligator:reptile big aquatic; snake/serpent:reptile; "
        "turtle/tortoise:reptile; "
        "lizard:reptile handheld; chameleon:reptile handheld",
    ),
    "plant": (
        "living plant",
        "rose; sunflower; tulip:europe; cactus; oak tree/oak:big; pine tree/pine:big; bamboo:asia; "
        "palm tree:big; daisy; lotus:aquatic asia; fern; moss; venus flytrap; orchid; maple tree/maple:big",
    ),
    "fruit": (
        "living plant food fruit sweet handheld",
        "apple; banana; orange; strawberry; grape/grapes; pineapple; mango; watermelon/melon; cherry; "
        "peach; pear; lemon; kiwi; coconut; blueberry/blueberries; pomegranate; avocado; plum; fig; papaya",
    ),
    "vegetable": (
        "living plant food vegetable handheld",
        "carrot; potato; tomato:fruit; broccoli; onion; garlic; cucumber; spinach; cabbage; lettuce; "
        "pumpkin:big; corn/maize; pepper/bell pepper; mushroom; eggplant/aubergine; pea/peas; celery",
    ),
    "dish": (
        "food man_made",
        "pizza:europe; sushi:asia; hamburger/burger:americas handheld; pasta/spaghetti:europe; "
        "taco:americas handheld; curry:asia; croissant:europe handheld sweet; "
        "chocolate:sweet handheld; ice cream/gelato:sweet; pancake/pancakes:sweet; cake:sweet; "
        "cookie/biscuit:sweet handheld; bread; cheese; soup; sandwich:handheld; popcorn; "
        "donut/doughnut:sweet handheld; "
        "honey:sweet; salad; dumpling/dumplings:asia; paella:europe; hot dog:americas handheld",
    ),
    "drink": (
        "drink man_made",
        "coffee; tea; milk; orange juice/juice:sweet; lemonade:sweet; wine; beer; water; "
        "hot chocolate/cocoa:sweet; smoothie:sweet; cola/soda:sweet",
    ),
    "country": (
        "place country",
        "France:europe; Germany:europe; Italy:europe; Spain:europe; Japan:asia; China:asia; India:asia; "
        "Brazil:americas; Canada:americas; Mexico:americas; Egypt:africa; Kenya:africa; Australia; "
        "Russia:europe asia; "
        "Argentina:americas; Norway:europe; Greece:europe; Thailand:asia; South Africa:africa; "
        "United States/USA/America:americas; Nigeria:africa; Peru:americas; Iceland:europe; Vietnam:asia",
    ),
    "city": (
        "place city man_made big",
        "Paris:europe; London:europe; Tokyo:asia; New York/New York City:americas; Rome:europe; "
        "Cairo:africa; "
        "Sydney; Rio de Janeiro/Rio:americas; Moscow:europe; Beijing:asia; Venice:europe; "
        "Istanbul:europe asia; "
        "Dubai:asia; Los Angeles:americas; Barcelona:europe; Amsterdam:europe; Mumbai:asia; "
        "Nairobi:africa; Toronto:americas; Singapore:asia",
    ),
    "landmark": (
        "place landmark man_made big",
        "Eiffel Tower:europe; Great Wall of China/Great Wall:asia; Statue of Liberty:americas; "
        "Colosseum:europe historical; Taj Mahal:asia historical; "
        "Great Pyramid of Giza/pyramids:africa historical; "
        "Big Ben:europe; Stonehenge:europe historical; Machu Picchu:americas historical; Sydney Opera House; "
        "Leaning Tower of Pisa:europe historical; Golden Gate Bridge:americas; Mount Rushmore:americas; "
        "Christ the Redeemer:americas; Acropolis/Parthenon:europe historical",
    ),
    "natural place": (
        "place big",
        "Mount Everest/Everest:asia; Amazon rainforest/Amazon:americas living; Sahara Desert/Sahara:africa; "
        "Grand Canyon:americas; Niagara Falls:americas aquatic; Great Barrier Reef:aquatic living; "
        "Nile River/Nile:africa aquatic; Pacific Ocean:aquatic; Mount Fuji:asia; Antarctica; "
        "Dead Sea:asia aquatic; Victoria Falls:africa aquatic",
    ),
    "vehicle": (
        "man_made object vehicle big",
        "car/automobile:wheels; bicycle/bike:wheels; motorcycle/motorbike:wheels; bus:wheels; "
        "train:wheels electronic; airplane/aeroplane/plane:flies; helicopter:flies; ship; sailboat; "
        "submarine:aquatic; rocket/spaceship:flies; truck/lorry:wheels; tram/streetcar:wheels electronic; "
        "skateboard:wheels; hot air balloon:flies; canoe/kayak:aquatic",
    ),
    "instrument": (
        "man_made object instrument",
        "piano:big; guitar; violin:handheld; drum/drums; trumpet:handheld; flute:handheld; saxophone; "
        "harp:big; cello:big; accordion; harmonica:handheld; clarinet:handheld; ukulele:handheld; "
        "bagpipes:europe; xylophone",
    ),
    "household object": (
        "man_made object",
        "chair; table; bed:big; lamp:electronic; umbrella:handheld; scissors:handheld; "
        "spoon:handheld kitchen; "
        "fork:handheld kitchen; knife:handheld kitchen; frying pan/pan:handheld kitchen; "
        "kettle:kitchen electronic; "
        "toothbrush:handheld; mirror; clock; book:handheld; pencil:handheld; candle:handheld; key:handheld; "
        "pillow; broom; hammer:handheld; ladder:big; teapot:kitchen handheld; backpack/rucksack:handheld; "
        "wallet:handheld; glasses/spectacles:handheld; balloon:handheld",
    ),
    "device": (
        "man_made object electronic",
        "smartphone/mobile phone/phone:handheld; laptop/notebook computer:handheld; television/TV; "
        "refrigerator/fridge:kitchen big; microwave/microwave oven:kitchen; washing machine; "
        "camera:handheld; "
        "headphones:handheld; calculator:handheld; drone:flies; robot; light bulb/lightbulb:handheld; "
        "toaster:kitchen; vacuum cleaner; video game console/game console; smartwatch:handheld; "
        "printer; radio; electric guitar:instrument",
    ),
    "sport": (
        "sport",
        "soccer/football:ball team; basketball:ball team; tennis:ball; golf:ball; "
        "baseball:ball team americas; "
        "cricket:ball team; rugby:ball team; volleyball:ball team; ice hockey/hockey:team; swimming:aquatic; "
        "boxing; chess; skiing; surfing:aquatic; table tennis/ping pong:ball; cycling; badminton; "
        "bowling:ball; marathon running/marathon; sumo wrestling/sumo:asia",
    ),
    "scientist": (
        "person scientist historical",
        "Albert Einstein/Einstein:europe; Isaac Newton/Newton:europe; Marie Curie:europe female; "
        "Charles Darwin/Darwin:europe; Galileo Galilei/Galileo:europe; Nikola Tesla/Tesla:europe americas; "
        "Thomas Edison/Edison:americas; Ada Lovelace:europe female; "
        "Leonardo da Vinci/da Vinci:europe artist; "
        "Aristotle:europe",
    ),
    "artist": (
        "person artist",
        "William Shakespeare/Shakespeare:europe historical; "
        "Wolfgang Amadeus Mozart/Mozart:europe historical; "
        "Ludwig van Beethoven/Beethoven:europe historical; Vincent van Gogh/van Gogh:europe historical; "
        "Pablo Picasso/Picasso:europe; Frida Kahlo:americas female; Jane Austen:europe female historical; "
        "Michael Jackson:americas; Taylor Swift:americas female; The Beatles/Beatles:europe; "
        "Claude Monet/Monet:europe historical; Elvis Presley/Elvis:americas",
    ),
    "leader": (
        "person leader",
        "Napoleon Bonaparte/Napoleon:europe historical; Cleopatra:africa female historical; "
        "Abraham Lincoln/Lincoln:americas historical; Julius Caesar/Caesar:europe historical; "
        "Queen Victoria:europe female historical; Nelson Mandela/Mandela:africa; Mahatma Gandhi/Gandhi:asia; "
        "Winston Churchill/Churchill:europe; George Washington:americas historical; "
        "Genghis Khan:asia historical; Joan of Arc:europe female historical",
    ),
    "athlete": (
        "person athlete",
        "Usain Bolt:americas; Serena Williams:americas female; Lionel Messi/Messi:americas; "
        "Michael Jordan:americas; Muhammad Ali:americas; Roger Federer/Federer:europe; "
        "Cristiano Ronaldo/Ronaldo:europe; Simone Biles:americas female",
    ),
    "fictional character": (
        "fictional",
        "Harry Potter:person europe; Sherlock Holmes:person europe; Mickey Mouse:animal mammal; "
        "Superman:person flies americas; Batman:person americas; Spider-Man/Spiderman:person americas; "
        "Pikachu:animal asia; Santa Claus/Father Christmas:person flies; dragon:animal flies big; "
        "unicorn:animal; mermaid:aquatic female; Darth Vader:person; "
        "Winnie the Pooh/Pooh Bear:animal mammal; "
        "Cinderella:person female; Frankenstein's monster/Frankenstein:person big; "
        "SpongeBob SquarePants/SpongeBob:aquatic; "
        "Mario/Super Mario:person; Gandalf:person; Peter Pan:person flies; Shrek:big",
    ),
}


def _parse_kb() -> list[dict[str, Any]]:
    entities = []
    for group, (shared, entries) in _KB.items():
        for entry in entries.split(";"):
            names, _, extra = entry.strip().partition(":")
            attributes = set(shared.split()) | set(extra.split())
            if attributes & {"scientist", "artist", "leader", "athlete"}:
                attributes |= {"person"}
            if "person" in attributes and "fictional" not in attributes:
                attributes.add("living")
            name_list = [n.strip() for n in names.split("/")]
            entity = {"title": name_list[0], "names": name_list, "group": group, "attributes": attributes}
            entities.append(entity)
    return entities


def _normalise(text: str) -> str:
    text = re.sub(r"[^a-z0-9 ]+", " ", text.lower())
    text = re.sub(r"^\s*(?:(?:is it|it is|it s|i think|my guess is|the answer is|maybe)\s+)+", "", text)
    text = re.sub(r"^\s*(?:the|a|an)\s+", "", text)
    return " ".join(text.split())


KNOWLEDGE_BASE: list[dict[str, Any]] = _parse_kb()
_NAMES: dict[str, str] = {_normalise(n): e["title"] for e in KNOWLEDGE_BASE for n in e["names"]}


def _make_task(task_id: str, entity: dict[str, Any], messages: list[dict[str, str]] | None = None) -> Task:
    hidden = {
        "title": entity["title"],
        "names": list(entity["names"]),
        "category": entity["group"],
        "description": entity.get("description", ""),
        "attributes": sorted(entity["attributes"]) if entity.get("attributes") is not None else None,
    }
    kind = entity["group"].replace("_", " ")
    opening = messages or [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": f"I am thinking of something ({kind}). Guess what it is."},
    ]
    return Task(task_id=task_id, env="telepathy", messages=opening, hidden=hidden)


def generate_tasks(seed: int = 0, n_test: int = 50) -> dict[str, list[Task]]:
    """The built-in task set: one task per knowledge-base entity, split at random by `seed`."""
    entities = list(KNOWLEDGE_BASE)
    random.Random(seed).shuffle(entities)
    tasks = [_make_task(f"telepathy-gen-{seed}-{i:04d}", e) for i, e in enumerate(entities)]
    return {"train": tasks[n_test:], "test": tasks[:n_test]}


def _userrl_entity(record: dict[str, Any]) -> dict[str, Any]:
    description = str(record.get("target_entity") or record.get("ground_truth") or "")
    names = [str(record["title"]).strip()]
    head = description.split(" - ")[0].strip()
    if head and head.lower() != names[0].lower():
        names.append(head)
    group = str(record.get("category", ""))
    return {"title": names[0], "names": names, "group": group, "description": description}


@ENVIRONMENTS.register("telepathy")
class TelepathyEnv(Environment):
    """Twenty-questions style guessing; 1 for a correct guess, which ends the episode."""

    score_mode = "sum"

    def __init__(
        self,
        *,
        max_turns: int = 16,
        simulator: Literal["offline", "llm"] = "offline",
        llm: LLMConfig | None = None,
        matcher: SemanticMatcher | None = None,
        max_chars: int = 4000,
    ) -> None:
        self.max_turns = max_turns
        self.client = simulator_client(simulator, llm)
        self.matcher = matcher or SemanticMatcher()
        self.max_chars = max_chars
        self.task: Task | None = None
        phrasings = [(attr, q) for attr, qs in ATTRIBUTES.items() for q in qs]
        self._attr_of = [attr for attr, _ in phrasings]
        self._attr_questions = [q for _, q in phrasings]

    # -- tasks -----------------------------------------------------------------------------------------
    @classmethod
    def load_tasks(cls, split: str, seed: int = 0) -> list[Task]:
        """The built-in generated tasks of `split` ("train" or "test")."""
        tasks = generate_tasks(seed)
        if split not in tasks:
            raise ValueError(f"unknown split {split!r}; expected 'train' or 'test'")
        return tasks[split]

    @classmethod
    def from_userrl(cls, path: str | Path) -> list[Task]:
        """Tasks from UserRL's `telepathy_entities.json` or verl `telepathy_train.parquet` (no attributes:
        the offline user answers from the entity's category and description only)."""
        path = Path(path)
        records = read_records(path)
        if path.suffix.lower() != ".parquet":
            return [_make_task(str(r["id"]), _userrl_entity(r)) for r in records]
        tasks = []
        for i, row in enumerate(records):
            meta = row["reward_model"]
            entity = _userrl_entity({**meta, "target_entity": meta.get("ground_truth")})
            messages = [{"role": m["role"], "content": m["content"]} for m in row["prompt"]]
            tasks.append(_make_task(f"telepathy-userrl-{i:04d}", entity, messages))
        return tasks

    # -- episode ---------------------------------------------------------------------------------------
    @property
    def _hidden(self) -> dict[str, Any]:
        if self.task is None:
            raise RuntimeError("call reset() before step()")
        return self.task.hidden

    def reset(self, task: Task) -> list[dict[str, str]]:
        self.task = task
        self.turns = 0
        self.history: list[dict[str, str]] = []
        return [dict(m) for m in task.messages]

    def step(self, action: str) -> StepResult:
        if self.task is None:
            raise RuntimeError("call reset() before step()")
        self.turns += 1
        out_of_turns = self.turns >= self.max_turns
        parsed = parse_action(action, choices=CHOICES, max_chars=self.max_chars)
        if isinstance(parsed, str):
            return StepResult(parsed, 0.0, out_of_turns, {"invalid": True})
        try:
            if parsed.choice == "answer":
                if self._is_correct(parsed.content):
                    return StepResult("Yes, that's right!", 1.0, True, {"success": True})
                return StepResult("No, that's not it.", 0.0, out_of_turns, {"success": False})
            return StepResult(self._answer(parsed), 0.0, out_of_turns, {})
        except SimulatorUnavailable as err:
            return failed_step(str(err))

    # -- offline user and judge ------------------------------------------------------------------------
    def names_in(self, text: str) -> bool:
        """Whether `text` names the hidden entity (all words of one of its names)."""
        words = set(_normalise(text).split())
        return any(set(_normalise(n).split()) <= words for n in self._hidden["names"])

    def _is_correct(self, guess: str) -> bool:
        if self.client is not None:
            return self._llm_judge(guess)
        normal = _normalise(guess)
        names = [_normalise(n) for n in self._hidden["names"]]
        if normal in names or any(tokens(normal) == tokens(n) and tokens(n) for n in names):
            return True
        _, score = self.matcher.best_match(normal, names)
        return score >= GUESS_THRESHOLDS[self.matcher.backend]

    def offline_answer(self, question: str) -> str:
        """Yes / No / Maybe from the knowledge base (or, without attributes, the category and description)."""
        hidden = self._hidden
        if self.names_in(question):
            return "Yes."
        attributes = hidden["attributes"]
        if attributes is not None and _NAMES.get(_normalise(question), hidden["title"]) != hidden["title"]:
            return "No."  # "Is it a <another entity>?"
        known = tokens(
            " ".join([hidden["category"].replace("_", " "), hidden["description"], *hidden["names"]])
        )
        if attributes is None and tokens(question) and tokens(question) <= known:
            return "Yes."
        index, score = self.matcher.best_match(question, self._attr_questions)
        if score < QUESTION_THRESHOLDS[self.matcher.backend]:
            return "Maybe."
        attribute = self._attr_of[index]
        if attributes is not None:
            return "Yes." if attribute in attributes else "No."
        return "Yes." if tokens(attribute.replace("_", " ")) <= known else "Maybe."

    def _answer(self, action: Action) -> str:
        if self.client is None:
            return self.offline_answer(action.content)
        hidden = self._hidden
        facts = hidden["description"] or ", ".join(hidden["attributes"] or [])
        system = USER_SIMULATOR_PROMPT.format(
            scenario="You are thinking of an entity, and the assistant is trying to guess it.",
            hidden=f"The entity: {hidden['title']} ({hidden['category']}). Facts: {facts}",
            rules="- Answer each question with exactly one of: Yes. / No. / Maybe.\n"
            "- Say Maybe only when the question cannot be answered with yes or no.",
        )
        self.history.append({"role": "user", "content": action.content})
        reply = self._client.chat([{"role": "system", "content": system}, *self.history])
        self.history.append({"role": "assistant", "content": reply})
        return reply

    @property
    def _client(self) -> LLMClient:
        if self.client is None:
            raise RuntimeError("the LLM client is only used in simulator='llm' mode")
        return self.client

    def _llm_judge(self, guess: str) -> bool:
        prompt = JUDGE_PROMPT.format(
            instructions="Decide whether the assistant's guess names the hidden entity. Accept the exact "
            "name, a synonym or an unambiguous reference to the same entity; reject anything "
            "broader or different.",
            reference=f"Hidden entity: {' / '.join(self._hidden['names'])}. {self._hidden['description']}",
            candidate=guess,
            answer_format="CORRECT or INCORRECT",
        )
        verdict = self._client.chat([{"role": "user", "content": prompt}]).strip().upper()
        if verdict.startswith("CORRECT"):
            return True
        if verdict.startswith("INCORRECT"):
            return False
        raise SimulatorUnavailable(f"the judge's verdict is neither CORRECT nor INCORRECT: {verdict[:200]!r}")
