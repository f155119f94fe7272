package roomname

// Word lists. Every word is lower-case ASCII letters, easy to say and to
// spell after hearing it. Nouns are plural and verbs in the plural present so
// that a name reads as a sentence: "BraveOttersChaseSilverComets".

const adjectiveList = `
able amber ancient agile airy amused angry arctic ardent autumn
bashful bold brave breezy bright brisk bronze bubbly busy calm
candid careful cheerful chilly civil clever cloudy coastal cosmic cozy
crimson crisp curious dainty daring dapper dazzling eager early earnest
easy elder electric elegant emerald epic even exotic fabled fair
famous fancy fearless festive fierce fine fluffy flying fond frank
free fresh friendly frosty funny gentle giant gifted giddy glad
gleaming glossy golden graceful grand grateful green groovy happy hardy
hasty hazel helpful heroic hidden honest hopeful humble icy ideal
indigo jade jolly jovial joyful keen kind lavish lazy legal
lemon level light lively lofty loyal lucky lunar magic major
marble mellow merry mighty mild misty modern modest musical mystic
narrow neat nimble noble northern novel oaken ocean olive orange
patient peaceful pearly perfect playful plucky polite polar proud purple
quick quiet radiant rapid rare ready regal rosy royal ruby
rugged rustic sandy scarlet secret serene shiny silent silky silver
simple sleepy slim smart smooth snowy solar sonic spicy spotted
steady stormy sturdy sunny super sweet swift tender tidy tiny
topaz tranquil tropical true trusty twin upbeat urban valiant velvet
vivid wandering warm wild windy wise witty woolly young zesty
amazing atomic balmy cobalt dusky feisty floral frozen hollow jazzy
`

const nounList = `
acorns actors albatrosses alligators anchors angels ants apples apricots arches
armadillos arrows artists asteroids atlases avocados badgers bagels bakers balloons
bananas bandits banjos barges barrels basins baskets bats beacons beads
beagles beams beans bears beavers bees beetles bells berries bicycles
birds bison blankets blossoms boats bobcats bonfires books boots bottles
boulders bracelets branches breezes bricks bridges brooks brooms bubbles buckets
buffaloes bugles bulbs bunnies buttons cabins cactuses cakes camels candles
canoes canyons capes captains cardinals carpets carrots castles cats caves
cedars cellos chairs chefs cherries chickens chimneys chipmunks circles cities
clams clocks clouds clovers coconuts coins comets compasses cookies corals
cougars cows coyotes crabs cranes crayons crickets crowns crows crystals
cupcakes curtains cyclists daisies dancers deer deserts diamonds dingoes dinosaurs
doctors dolphins donkeys doves dragons dragonflies drums ducks dunes eagles
echoes eels elephants elks elms embers emeralds engines falcons farmers
feathers ferns ferries fiddles fields figs finches fireflies fishes flags
flamingos flutes foxes frogs gadgets galaxies gardens gazelles geckos geese
geysers giants giraffes glaciers gliders globes goats gondolas gophers gorillas
grapes griffins guitars gulls hammers hamsters harbors hares harps hawks
hedgehogs helmets herons hills hippos hornets horses hummingbirds iguanas islands
jackals jaguars jellyfish jets jewels journeys kangaroos kettles keys kites
kittens kiwis knights koalas ladders ladybugs lagoons lambs lamps lanterns
leopards lemons lemurs letters lighthouses lilies lions lizards llamas lobsters
locks lynxes magnets magpies mammoths mangoes maples marbles mariners meadows
melons mermaids meteors mice minnows mirrors moles monkeys moons moose
mountains muffins mushrooms narwhals nests newts nightingales oaks oceans octopuses
onions opals orchards orchids ostriches otters owls oxen oysters paddles
pandas panthers parrots peaches peacocks pears pebbles pelicans penguins peppers
pianos pilots pines pirates planets plums poets ponies poppies porcupines
potatoes puffins pumpkins puppies pyramids quails queens rabbits raccoons rafts
rainbows ravens reindeer rhinos ribbons rivers robins rockets roses rubies
sailors salmon sandals satellites scarves scientists scooters seagulls seals shadows
sharks sheep shells ships skaters sloths snails snakes sparrows spiders
squirrels stars statues storks streams submarines sunflowers swans tables tacos
tapirs teachers temples tigers toads tomatoes tortoises toucans towers tractors
trains trees trolls trumpets tulips tunnels turkeys turtles umbrellas unicorns
valleys vases violins volcanoes vultures wagons walruses waterfalls waves weasels
whales whistles willows windmills wizards wolves wombats woodpeckers yaks zebras
acrobats admirals alpacas anemones antelopes archers badges barnacles biscuits blizzards
bobsleds boulevards buzzards canaries caravans carousels cassowaries caterpillars cheetahs chimes
cobras condors cottages coyotes cupboards cymbals dahlias dandelions drizzles dumplings
`

const verbList = `
admire adore allow amaze applaud arrive ask assemble attract bake
balance bounce bring build buy call carry catch celebrate chase
cheer climb collect count cover crawl create cross cuddle dance
dazzle decorate deliver design discover dive draw dream drift drive
echo embrace enjoy escape explore fetch find fix float fly
follow forgive gather glide greet grow guard guide help hide
hike hold hop hug hum hunt imagine inspire invent jog
join juggle jump keep kick kiss knit launch lead learn
lift like listen love make march meet melt mend mimic
mix move nudge observe open orbit order paint pass pick
plant play polish pour praise present protect pull push race
reach read remember repair rescue ride roam roll row run
sail salute save search seek serve shake share shine shout
sing sketch skip slide smile sniff solve sort spin splash
spot sprint squeeze start steer stir stretch study surprise swim
swing teach tease thank throw tickle toss touch track trade
travel tumble twirl unite unwrap visit wake walk wander warn
wash watch wave weave welcome whisper win wink wish wonder
write yodel zoom admit bless borrow brush calm carve chant
charm chime clap coach cook craft crown cure dust earn
`

// commonList holds names people pick for meetings without thinking: a room
// named after one of these (digits aside) is easy to guess.
const commonList = `
meeting meetings meet test testing demo call calls chat room rooms conference
standup daily weekly monthly sync team teams office work project review
planning sprint retro retrospective interview hangout hello hi jitsi zoom
class lesson school family friends party lobby general main default
staff board admin support sales marketing dev devops engineering design product
lunch coffee talk talks webinar event events workshop training session private
secret public open group video audio online virtual home personal my our
`
