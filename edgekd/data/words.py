"""Everyday English words: the vocabulary synthesized running speech and a wake word's ``_unknown_`` clips draw from.

A wake-word detector meets thousands of words; a recipe whose negatives are a few dozen learns that everything else
is the phrase. Measured: the "view glass" bundle trained on the 33 Speech Commands "other" words and ~25 function
words fired on real "yes", "left", "off" and spoken digits (words its training speech never held), 79 times in 1.5 h
of real speech at a threshold of 0.3. The list below (written for edgekd: function words, common verbs, nouns,
adjectives, numbers, days, months, everyday commands) is grouped by kind only for reading; it is used as one set.
"""

from __future__ import annotations

__all__ = ["COMMON_WORDS", "everyday_words"]

_FUNCTION = """
a an the this that these those here there what which who whom whose when where why how all any both each every few
more most other some such no nor not only own same so than too very can will just should now i me my we our you your
he him his she her it its they them their am is are was were be been being have has had do does did doing would could
might must shall may of at by for with about against between into through during before after above below to from up
down in out on off over under again further then once and but if or because as until while yes okay well also still
""".split()

_VERBS = """
ask be become begin bring build buy call carry catch change check choose clean climb close come cook count cover cut
dance decide draw dream drink drive drop eat enjoy explain fall feel fight fill find finish fix fly follow forget get
give grow hang happen hate hear help hide hit hold hope hurry keep kick kill knock know laugh lay lead learn leave lend
let lie lift like listen live look lose love make mean meet miss move need open order paint pass pay pick plan plant
play pour prefer prepare press promise pull push put reach read remember rent repeat reply rest return ride ring rise
run save say see sell send set shake share shine shop shout show shut sing sit sleep smell smile speak spend stand
start stay steal stick study swim take talk taste teach tell thank think throw touch travel try turn understand use
visit wait wake walk want wash watch wear win wish wonder work worry write
""".split()

_NOUNS = """
air animal answer apple arm baby back bag ball bank bathroom bed bedroom bike bill bird birthday board boat body book
bottle box boy bread breakfast brother bus business cake car card cat chair chicken child city class clock clothes
coffee color corner country course cup dad day desk dinner doctor dog dollar door dream dress end evening eye face
family farm father film finger fire fish floor flower food foot friend front fruit game garden girl glass gold grass
group hair half hand head heart hill holiday home horse hospital hotel hour house husband idea island job juice key
kitchen lady lake language letter life light line list lunch machine man map market meat milk minute mirror moment
money month morning mother mountain mouth movie music name night noise nose note number office oil page paper park
party people person phone picture piece place plate pocket price problem question radio rain reason river road rock
room school screen sea season shirt shoe shop side sign sister size sky snow son song sound space sport spring star
station story street student summer sun table tea teacher team television test thing ticket time today tomorrow tonight
town toy train tree trip truth uncle valley video village voice wall war water way weather week weekend window wind
winter woman word world year yesterday
""".split()

_ADJECTIVES = """
able bad beautiful best better big black blue bright brown busy cheap clean clear cold cool dark dead deep different
difficult dirty dry early easy empty expensive fast fat fine free fresh full funny good great green happy hard heavy
high hot important large late light little long loud low main modern new nice old open orange pink poor pretty purple
quick quiet ready real red rich right round sad safe short sick simple slow small smart soft sorry special strong
sure sweet tall thick thin tired true warm weak wet white whole wide wild wrong young
""".split()

_NUMBERS_AND_TIME = """
zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen
eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred thousand million first second third
monday tuesday wednesday thursday friday saturday sunday january february march april may june july august september
october november december
""".split()

_COMMANDS = """
go stop left right next previous pause resume skip volume louder quieter mute unmute lights lamp fan heater alarm
timer reminder calendar message email weather news temperature cancel confirm repeat help hello goodbye hey hi please
thanks maybe never always sometimes often usually together forward backward north south east west
""".split()


def everyday_words(exclude: tuple[str, ...] = ()) -> tuple[str, ...]:
    """``COMMON_WORDS`` without the words of ``exclude`` (phrases: each of their words is left out)."""
    banned = {w for p in exclude for w in p.split()}
    return tuple(w for w in COMMON_WORDS if w not in banned)


COMMON_WORDS: tuple[str, ...] = tuple(dict.fromkeys(_FUNCTION + _VERBS + _NOUNS + _ADJECTIVES + _NUMBERS_AND_TIME + _COMMANDS))
