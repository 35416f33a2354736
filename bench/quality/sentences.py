"""Sentences for the quality benchmark (issue 13).

EVAL: the evaluation set (paraphrase pairs, unrelated pairs, questions, technical and
long sentences). PARAPHRASE_PAIRS and UNRELATED_PAIRS index into EVAL and are used for
the sanity check of the forward pass.

CALIB: a separate, disjoint calibration set (hand-written). The calibration comparison
(run.py --calibration N, calib.calibration_pool) pools it with Python docstring sentences
for Gram matrices of layer inputs; the main quality benchmark does not use it.
"""

EVAL = [
    # 0-19: ten paraphrase pairs (2i, 2i+1)
    "A man is playing guitar.",
    "Someone plays a guitar.",
    "The cat is sleeping on the sofa.",
    "A cat naps on the couch.",
    "The stock market fell sharply today.",
    "Share prices dropped steeply this afternoon.",
    "She is cooking pasta in the kitchen.",
    "A woman prepares spaghetti at the stove.",
    "The train to Berlin was delayed by two hours.",
    "Our Berlin train arrived two hours late.",
    "Children are playing football in the park.",
    "Kids kick a soccer ball around the park.",
    "He forgot his umbrella and got soaked in the rain.",
    "He left his umbrella at home and got wet in the downpour.",
    "The company announced record profits for the quarter.",
    "The firm reported its highest quarterly earnings ever.",
    "I can't find my keys anywhere.",
    "My keys seem to have disappeared.",
    "The doctor told him to get more sleep.",
    "His physician advised him to rest more at night.",
    # 20-27: questions
    "How do I reset my password?",
    "What is the capital of Australia?",
    "Why is the sky blue during the day?",
    "Where can I buy fresh bread near the station?",
    "Is it safe to swim in the lake after a storm?",
    "How many moons does Jupiter have?",
    "Can you recommend a good book about the history of Rome?",
    "When does the museum open on Sundays?",
    # 28-37: technical
    "The function returns a null pointer if the allocation fails.",
    "Gradient descent updates the parameters in the direction of the negative gradient.",
    "The TCP handshake uses SYN, SYN-ACK and ACK packets.",
    "Sigma-delta modulation trades amplitude resolution for oversampling.",
    "A hash map offers constant expected time lookups.",
    "The compiler inlines small functions to avoid call overhead.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "The eigenvalues of a symmetric matrix are real.",
    "Enable the firewall before exposing the server to the internet.",
    "The mitochondria produce most of the cell's supply of ATP.",
    # 38-47: assorted everyday / unrelated
    "A dog is running across the beach.",
    "The violin concert was sold out within minutes.",
    "Tomatoes grow best in warm, sunny weather.",
    "The referee showed the player a red card.",
    "Our flight was cancelled because of fog.",
    "She painted the fence bright yellow.",
    "The library extended its opening hours for exam week.",
    "A volcano erupted on a remote island last night.",
    "He bought a second-hand bicycle for his commute.",
    "The bakery on the corner sells the best croissants in town.",
    # 48-55: long sentences
    "After several months of negotiations, the two governments finally signed a trade "
    "agreement that lowers tariffs on agricultural products and sets up a joint committee "
    "to resolve future disputes.",
    "When the power went out during the storm, the whole neighbourhood gathered in the "
    "community hall, sharing candles, blankets and whatever food people had brought from "
    "their fridges before it spoiled.",
    "The researchers trained the model on millions of images and then evaluated it on a "
    "held-out test set, reporting both accuracy and calibration error for each class.",
    "Although the recipe looked simple, getting the bread to rise properly took her many "
    "attempts, a new oven thermometer and a lot of patience.",
    "The old lighthouse, abandoned for decades, was restored by volunteers who repaired the "
    "lamp, repainted the tower and opened it to visitors every summer weekend.",
    "In the final minutes of the match the underdogs scored twice, turning a certain defeat "
    "into a victory that their supporters would talk about for years.",
    "To install the package, create a virtual environment, activate it, and run the "
    "installer with the optional dependencies for plotting and testing.",
    "The committee reviewed every application carefully, but in the end only three of the "
    "forty candidates were invited to the final interview round.",
]

PARAPHRASE_PAIRS = [(2 * i, 2 * i + 1) for i in range(10)]
UNRELATED_PAIRS = [(0, 4), (2, 30), (8, 35), (20, 40), (6, 31), (12, 45), (38, 28), (16, 41)]

CALIB = [
    "The weather forecast predicts snow for the weekend.",
    "He answered the phone on the second ring.",
    "The children built a sandcastle near the water.",
    "Please close the window before you leave.",
    "The orchestra tuned their instruments before the performance.",
    "A small boat drifted slowly down the river.",
    "The museum displays paintings from the eighteenth century.",
    "She ran five kilometres before breakfast.",
    "Our neighbours adopted a puppy last week.",
    "The printer on the third floor is out of paper again.",
    "Fresh vegetables are delivered to the market every morning.",
    "The bridge was closed for repairs all summer.",
    "They planted apple trees along the garden wall.",
    "The movie received excellent reviews from critics.",
    "A strong wind knocked down several branches.",
    "The teacher handed out the exam papers.",
    "What time does the last bus leave?",
    "How long does it take to boil an egg?",
    "Which planet is closest to the sun?",
    "Who wrote the novel about the white whale?",
    "Is there a pharmacy open late tonight?",
    "What is the difference between a virus and a bacterium?",
    "How can I improve my handwriting?",
    "Why do leaves change colour in autumn?",
    "Could you explain how vaccines work?",
    "Where is the nearest post office?",
    "The kernel schedules threads across all available cores.",
    "A binary search halves the interval at every step.",
    "The database index speeds up queries on the customer table.",
    "Floating point addition is not associative.",
    "The transformer uses self-attention to mix information between tokens.",
    "A Fourier transform decomposes a signal into its frequencies.",
    "The garbage collector frees memory that is no longer reachable.",
    "Encrypt the backup before uploading it to remote storage.",
    "The API returns a JSON object with a status field.",
    "Quantization reduces the number of bits used to store each weight.",
    "The resistor limits the current through the LED.",
    "A singular value decomposition factors any matrix into three parts.",
    "The unit tests run on every commit to the main branch.",
    "Lithium batteries lose capacity in very cold temperatures.",
    "The river flooded the fields after a week of heavy rain.",
    "He spent the afternoon repairing the roof of the barn.",
    "A flock of geese flew south over the lake.",
    "The chef seasoned the soup with thyme and black pepper.",
    "The new stadium can hold sixty thousand spectators.",
    "She learned to play the piano as a child.",
    "The ferry crosses the strait twice a day.",
    "An old map was found hidden inside the book.",
    "The hikers reached the summit just before sunset.",
    "The shop offers a discount to students on Tuesdays.",
    "Traffic was heavy on the motorway this morning.",
    "The village holds a festival every spring.",
    "The scientist recorded the temperature every hour.",
    "A thunderstorm interrupted the outdoor wedding.",
    "The pianist bowed to the audience after the last piece.",
    "The farmer sold his honey at the weekly market.",
    "The report was due on Friday but arrived on Monday.",
    "Two owls were nesting in the barn roof.",
    "The city council voted to build a new cycle lane along the river, despite objections "
    "from some shop owners who feared losing parking spaces.",
    "Because the software update changed the file format, older versions of the program "
    "could no longer open documents saved by the newer one.",
    "The expedition spent three weeks crossing the glacier, carrying all their supplies on "
    "sledges and sleeping in tents pitched on the ice.",
    "During the interview the candidate described how she had led a small team through a "
    "difficult migration of the company's payment system.",
    "The festival's organisers hired extra staff, installed more water stations and opened "
    "a second entrance to cope with the record number of visitors.",
    "Engineers monitored the bridge with sensors that measured vibration, temperature and "
    "strain, sending the data to a central server every minute.",
    "My grandmother keeps every letter she has ever received in a wooden box under her bed.",
    "The goalkeeper saved a penalty in the last minute of extra time.",
    "A cup of green tea contains less caffeine than a cup of coffee.",
    "The marathon route passes through five different districts of the city.",
]

assert len(EVAL) >= 48 and len(CALIB) >= 64
assert not set(EVAL) & set(CALIB), "evaluation and calibration sets must be disjoint"
